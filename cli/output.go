package cli

import (
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// printJSON writes m as one JSON object with the proto field names (snake_case).
func printJSON(w io.Writer, m proto.Message) error {
	data, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = fmt.Fprintln(w, string(data))
	return err
}

// printResult prints m as JSON with --output json, else the formatted line.
func printResult(env Env, g *Globals, m proto.Message, format string, args ...any) error {
	if g.Output == "json" {
		return printJSON(env.Stdout, m)
	}
	_, err := fmt.Fprintf(env.Stdout, format, args...)
	return err
}
