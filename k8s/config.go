package k8s

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// The lines that enclose what setup adds to containerd's configuration. Destroy removes exactly
// the lines from blockBegin to blockEnd, and what the note lines inside record.
const (
	blockBegin = "# BEGIN cedana k8s setup: the cedana runtime handler. `cedana k8s destroy` removes this block."
	blockEnd   = "# END cedana k8s setup"
	// noteCreated says that the file did not exist before setup: destroy removes it.
	noteCreated = "# cedana k8s setup created this file."
	// noteNewline says that setup added a newline after the file's last line, which had none.
	noteNewline = "# cedana k8s setup ended the line before this block."
	// noteRunc explains the runc runtime setup defines when the file defines no runtime.
	noteRunc = "# containerd's default runc, which a runtimes table in this file replaces:"
)

// The CRI plugin's names, and the tables its runtimes live in, by configuration version.
var (
	criRuntimesTable = map[int64][]string{
		2: {"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"},    // containerd 1.x
		3: {"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"}, // containerd 2.x
	}
	// criPlugins are the plugin IDs whose presence in disabled_plugins leaves no CRI runtime.
	criPlugins = []string{"cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"}
)

// ConfigFile is the content of containerd's configuration file, or its absence.
type ConfigFile struct {
	Data   []byte
	Exists bool
}

// AddRuntime returns the configuration at path (orig) with the cedana runtime handler whose runc is
// binaryName. A configuration setup already changed is first restored (RemoveRuntime), so that
// running setup again leaves one runtime entry, set to binaryName. path only names the file in
// errors.
func AddRuntime(path string, current ConfigFile, binaryName string) ([]byte, error) {
	orig, err := RemoveRuntime(path, current)
	if err != nil {
		return nil, err
	}
	var parsed map[string]any
	if err := toml.Unmarshal(orig.Data, &parsed); err != nil {
		return nil, fmt.Errorf("containerd's configuration %s is not valid TOML: %w; fix it, then run cedana k8s setup again", path, err)
	}
	version, addVersion, err := configVersion(path, parsed)
	if err != nil {
		return nil, err
	}
	if disabled := disabledCRI(parsed); disabled != "" {
		return nil, fmt.Errorf("containerd's configuration %s disables the CRI plugin (disabled_plugins holds %q): "+
			"Kubernetes needs it; remove it from disabled_plugins, then run cedana k8s setup again", path, disabled)
	}
	table := criRuntimesTable[version]
	if _, ok := lookup(parsed, append(slices.Clone(table), RuntimeHandler)); ok {
		return nil, fmt.Errorf("containerd's configuration %s already defines a runtime %q that cedana k8s setup did not write ([%s]): "+
			"remove that runtime, or remove the file's %q table, then run cedana k8s setup again",
			path, RuntimeHandler, tableName(table, RuntimeHandler), RuntimeHandler)
	}
	var block bytes.Buffer
	block.WriteString(blockBegin + "\n")
	if !orig.Exists {
		block.WriteString(noteCreated + "\n")
	}
	sep := ""
	if len(orig.Data) > 0 && orig.Data[len(orig.Data)-1] != '\n' {
		block.WriteString(noteNewline + "\n")
		sep = "\n"
	}
	if addVersion {
		fmt.Fprintf(&block, "version = %d\n", version)
	}
	if runtimes, _ := lookup(parsed, table); len(asTable(runtimes)) == 0 {
		// containerd's own runtimes table, with runc, is replaced by the file's, even one that
		// holds only cedana: then the CRI plugin does not load, for want of its default runtime.
		block.WriteString(noteRunc + "\n")
		fmt.Fprintf(&block, "[%s]\n", tableName(table, "runc"))
		fmt.Fprintf(&block, "  runtime_type = %q\n", "io.containerd.runc.v2")
	}
	fmt.Fprintf(&block, "[%s]\n", tableName(table, RuntimeHandler))
	fmt.Fprintf(&block, "  runtime_type = %q\n", "io.containerd.runc.v2")
	fmt.Fprintf(&block, "  pod_annotations = [%q]\n", AnnotationPrefix)
	fmt.Fprintf(&block, "[%s]\n", tableName(table, RuntimeHandler, "options"))
	fmt.Fprintf(&block, "  BinaryName = %q\n", binaryName)
	block.WriteString(blockEnd + "\n")
	out := slices.Concat(orig.Data, []byte(sep), block.Bytes())
	if err := checkRuntime(out, table, binaryName); err != nil {
		return nil, fmt.Errorf("adding the cedana runtime to containerd's configuration %s would leave it invalid (%w): "+
			"define the runtime by hand as README.md's Kubernetes section shows", path, err)
	}
	return out, nil
}

// RemoveRuntime returns the configuration at path as it was before setup changed it: current
// without setup's block, and without the file when setup created it. A configuration without the
// block is returned as it is.
func RemoveRuntime(path string, current ConfigFile) (ConfigFile, error) {
	if !current.Exists {
		return current, nil
	}
	data := current.Data
	begin := findLine(data, blockBegin)
	if begin < 0 {
		if findLine(data, blockEnd) >= 0 {
			return current, fmt.Errorf("containerd's configuration %s has the line %q without its %q: remove the rest of the block by hand", path, blockEnd, blockBegin)
		}
		return current, nil
	}
	endLine := findLine(data[begin:], blockEnd)
	if endLine < 0 {
		return current, fmt.Errorf("containerd's configuration %s has the line %q without its %q: restore the block's end, or remove the block by hand", path, blockBegin, blockEnd)
	}
	end := begin + endLine + len(blockEnd)
	if end < len(data) && data[end] == '\n' {
		end++
	}
	if findLine(data[end:], blockBegin) >= 0 {
		return current, fmt.Errorf("containerd's configuration %s holds more than one cedana k8s setup block: remove all of them by hand, then run cedana k8s setup again", path)
	}
	block := data[begin:end]
	before := data[:begin]
	if findLine(block, noteNewline) >= 0 && len(before) > 0 && before[len(before)-1] == '\n' {
		before = before[:len(before)-1]
	}
	orig := ConfigFile{Data: slices.Concat(before, data[end:]), Exists: true}
	if findLine(block, noteCreated) >= 0 && len(orig.Data) == 0 {
		orig = ConfigFile{}
	}
	return orig, nil
}

// configVersion returns the version of the parsed configuration at path, and whether the block must
// set it: a file with no settings at all gets version 2 (containerd 1.7's), any other file must say
// which version it is, and only the versions the CRI runtime tables are known for are accepted.
func configVersion(path string, parsed map[string]any) (version int64, add bool, err error) {
	raw, ok := parsed["version"]
	if !ok {
		if len(parsed) == 0 {
			return 2, true, nil
		}
		return 0, false, fmt.Errorf("containerd's configuration %s has no version line, so containerd reads it as version 1, which cedana k8s setup does not edit: "+
			"migrate it to version 2 (containerd 1.7) or 3 (containerd 2.x; `containerd config migrate` prints it), then run cedana k8s setup again", path)
	}
	v, ok := raw.(int64)
	if _, known := criRuntimesTable[v]; !ok || !known {
		return 0, false, fmt.Errorf("containerd's configuration %s has version = %v, which cedana k8s setup does not know: "+
			"it edits versions 2 (containerd 1.7) and 3 (containerd 2.x); migrate the file (`containerd config migrate`), or add the runtime by hand", path, raw)
	}
	return v, false, nil
}

// disabledCRI returns the CRI plugin parsed's disabled_plugins names, or "".
func disabledCRI(parsed map[string]any) string {
	list, _ := parsed["disabled_plugins"].([]any)
	for _, item := range list {
		if name, ok := item.(string); ok && slices.Contains(criPlugins, name) {
			return name
		}
	}
	return ""
}

// checkRuntime parses data and checks that it defines the cedana runtime, with binaryName as its
// runc, where the table says.
func checkRuntime(data []byte, table []string, binaryName string) error {
	var parsed map[string]any
	if err := toml.Unmarshal(data, &parsed); err != nil {
		return err
	}
	runtime := append(slices.Clone(table), RuntimeHandler)
	checks := []struct {
		key  []string
		want any
	}{
		{append(slices.Clone(runtime), "runtime_type"), "io.containerd.runc.v2"},
		{append(slices.Clone(runtime), "pod_annotations"), []any{AnnotationPrefix}},
		{append(slices.Clone(runtime), "options", "BinaryName"), binaryName},
	}
	for _, c := range checks {
		got, _ := lookup(parsed, c.key)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			return fmt.Errorf("%s is %v, not %v", strings.Join(c.key, "."), got, c.want)
		}
	}
	return nil
}

// lookup returns the value at key in a parsed TOML document.
func lookup(doc map[string]any, key []string) (any, bool) {
	var cur any = doc
	for _, k := range key {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// asTable is v as a TOML table, nil if it is none.
func asTable(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// tableName is the TOML header name of the table at path+more, with dotted keys quoted.
func tableName(path []string, more ...string) string {
	parts := slices.Concat(path, more)
	for i, p := range parts {
		if strings.ContainsAny(p, ".\"") {
			parts[i] = fmt.Sprintf("%q", p)
		}
	}
	return strings.Join(parts, ".")
}

// findLine returns the offset of the first whole line of data equal to line, or -1.
func findLine(data []byte, line string) int {
	for off := 0; off < len(data); {
		rest := data[off:]
		n := bytes.IndexByte(rest, '\n')
		if n < 0 {
			n = len(rest)
		}
		if string(rest[:n]) == line {
			return off
		}
		off += n + 1
	}
	return -1
}
