package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// printJSON writes m as one JSON object with the proto field names (snake_case), indented the
// same way by every build: protojson varies its whitespace on purpose, which scripts that grep
// the output (`"status": "running"`) must not see.
func printJSON(w io.Writer, m proto.Message) error {
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(w)
	return err
}

// printAs prints m as JSON with --output json, else as text writes it.
func printAs[M proto.Message](env Env, g *Globals, m M, text func(io.Writer, M) error) error {
	if g.Output == "json" {
		return printJSON(env.Stdout, m)
	}
	return text(env.Stdout, m)
}

// show calls rpc with req and prints its answer as printAs does.
func show[Req any, Resp proto.Message](ctx context.Context, env Env, g *Globals,
	rpc func(context.Context, *Req) (Resp, error), req *Req, text func(io.Writer, Resp) error,
) error {
	resp, err := rpc(ctx, req)
	if err != nil {
		return err
	}
	return printAs(env, g, resp, text)
}

// newTable returns a writer that aligns tab-separated columns, with the header row written if
// there is one; Flush writes the table.
func newTable(out io.Writer, header ...string) *tabwriter.Writer {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(header) > 0 {
		fmt.Fprintln(w, strings.Join(header, "\t"))
	}
	return w
}

// field is a key and its value, a line of a record printed as key/value lines.
type field [2]string

// fields are a record's key/value lines, in order.
type fields []field

// print writes the lines with their values aligned.
func (f fields) print(out io.Writer) error {
	w := newTable(out)
	for _, kv := range f {
		fmt.Fprintf(w, "%s\t%s\n", kv[0], kv[1])
	}
	return w.Flush()
}

// printResult prints m as JSON with --output json, else the formatted line.
func printResult(env Env, g *Globals, m proto.Message, format string, args ...any) error {
	return printAs(env, g, m, func(w io.Writer, _ proto.Message) error {
		_, err := fmt.Fprintf(w, format, args...)
		return err
	})
}

// printStats writes a short summary of a dump's or restore's phases and sizes.
func printStats(w io.Writer, s *daemonv1.Stats) {
	if s == nil {
		return
	}
	phases := make([]string, 0, len(s.Phases))
	for name := range s.Phases {
		phases = append(phases, name)
	}
	sort.Strings(phases)
	fmt.Fprintf(w, "total %s", s.Total.AsDuration().Round(time.Millisecond))
	if s.Frozen != nil {
		fmt.Fprintf(w, ", frozen %s", s.Frozen.AsDuration().Round(time.Millisecond))
	}
	for _, name := range phases {
		fmt.Fprintf(w, ", %s %s", name, s.Phases[name].AsDuration().Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	if s.RawBytes > 0 {
		ratio := ""
		if s.StoredBytes > 0 {
			ratio = fmt.Sprintf(" (ratio %.2f)", float64(s.RawBytes)/float64(s.StoredBytes))
		}
		fmt.Fprintf(w, "images %s, stored %s%s\n", humanSize(s.RawBytes), humanSize(s.StoredBytes), ratio)
	}
	for _, note := range s.Notes {
		fmt.Fprintln(w, "note:", note)
	}
}

// localOrRemote makes a local path absolute (the daemon has another working directory) and leaves
// an s3:// URL alone.
func localOrRemote(p string) (string, error) {
	if p == "" || strings.HasPrefix(p, "s3://") || filepath.IsAbs(p) {
		return p, nil
	}
	return filepath.Abs(p)
}
