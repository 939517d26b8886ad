// Command checkruntimes checks that a cedana binary holds exactly the runtimes its build tags ask
// for: `just matrix` runs it on every build of the tag matrix.
//
//	checkruntimes -tags custom,runtimes.runc bin/cedana
//
// It runs `<binary> features --output json` and compares every runtime any feature lists with the
// runtimes the tags name (Telegraf's scheme: no `custom` tag, or the `runtimes` tag, means every
// known runtime; `runtimes.<name>` adds one). A runtime the tags did not ask for (one compiled in
// because another runtime's package imports it) fails the check, as does one that is missing.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

func main() {
	tags := flag.String("tags", "", "the build tags the binary was built with (comma-separated)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: checkruntimes -tags TAGS BINARY")
		os.Exit(2)
	}
	if err := check(flag.Arg(0), *tags); err != nil {
		fmt.Fprintf(os.Stderr, "checkruntimes: %v\n", err)
		os.Exit(1)
	}
}

// check runs the binary's features command and compares what it lists with what tags ask for.
func check(binary, tags string) error {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, "features", "--output", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s features: %w: %s", binary, err, stderr.String())
	}
	var list daemonv1.ListFeaturesResponse
	if err := protojson.Unmarshal(stdout.Bytes(), &list); err != nil {
		return fmt.Errorf("%s features --output json: %w", binary, err)
	}
	want := wanted(tags, list.KnownRuntimes)
	got := listed(&list)
	if err := compare(want, got); err != nil {
		return fmt.Errorf("tags %q: %w", tags, err)
	}
	fmt.Printf("tags %q: runtimes [%s], as asked\n", tags, strings.Join(got, " "))
	return nil
}

// wanted is the sorted runtimes, among known, that a build with tags holds.
func wanted(tags string, known []string) []string {
	set := strings.Split(tags, ",")
	if !slices.Contains(set, "custom") || slices.Contains(set, "runtimes") {
		return slices.Sorted(slices.Values(known))
	}
	var want []string
	for _, rt := range known {
		if slices.Contains(set, "runtimes."+rt) {
			want = append(want, rt)
		}
	}
	slices.Sort(want)
	return want
}

// listed is every runtime that provides at least one feature, sorted.
func listed(list *daemonv1.ListFeaturesResponse) []string {
	var got []string
	for _, f := range list.Features {
		for _, rt := range f.Runtimes {
			if !slices.Contains(got, rt) {
				got = append(got, rt)
			}
		}
	}
	slices.Sort(got)
	return got
}

// compare names the runtimes that are compiled in without being asked for, and those missing.
func compare(want, got []string) error {
	var errs []error
	for _, rt := range got {
		if !slices.Contains(want, rt) {
			errs = append(errs, fmt.Errorf("the binary has runtime %s, which the tags do not ask for (a package that registers it is imported by another runtime?)", rt))
		}
	}
	for _, rt := range want {
		if !slices.Contains(got, rt) {
			errs = append(errs, fmt.Errorf("the binary lacks runtime %s, which the tags ask for", rt))
		}
	}
	return errors.Join(errs...)
}
