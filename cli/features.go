package cli

import (
	"fmt"
	"strings"

	"github.com/cedana/cedana/features"
)

// FeaturesCmd is `cedana features`: which runtime provides which feature in this binary.
type FeaturesCmd struct{}

// Run prints the table.
func (c *FeaturesCmd) Run(g *Globals, env Env) error {
	list := features.List()
	if g.Output == "json" {
		return printJSON(env.Stdout, list)
	}
	w := newTable(env.Stdout)
	fmt.Fprintf(w, "FEATURE\t%s\tDESCRIPTION\n", strings.Join(upper(list.KnownRuntimes), "\t"))
	for _, f := range list.Features {
		cells := make([]string, len(list.KnownRuntimes))
		for i, rt := range list.KnownRuntimes {
			cells[i] = "-"
			for _, have := range f.Runtimes {
				if have == rt {
					cells[i] = "yes"
				}
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, strings.Join(cells, "\t"), f.Description)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, rt := range list.KnownRuntimes {
		if !features.DumpCmd.IsAvailable(rt) {
			fmt.Fprintf(env.Stdout, "%s: %s\n", rt, features.Absence(rt))
		}
	}
	return nil
}

func upper(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToUpper(n)
	}
	return out
}
