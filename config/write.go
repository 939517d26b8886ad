package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cedana/cedana/internal/atomicfile"
)

// Secrets are the keys whose values Masked hides.
var Secrets = []string{"token", "storage.s3.access_key", "storage.s3.secret_key"}

// Masked returns c as a JSON object with every secret that is set replaced by "***".
func Masked(c Config) map[string]any {
	tree := tree(c)
	for _, key := range Secrets {
		parent, leaf, _ := parentOf(tree, key)
		if v, _ := parent[leaf].(string); v != "" {
			parent[leaf] = "***"
		}
	}
	return tree
}

// tree is c as a decoded JSON object.
func tree(c Config) map[string]any {
	var t map[string]any
	data, _ := json.Marshal(c)
	_ = json.Unmarshal(data, &t)
	return t
}

// WriteFile writes c into l.File (Cedana's --merge-config): c's keys, Cedana's names written as
// ours, and the unknown keys of the file l was loaded from, kept as they were. The file keeps its
// mode (0644 when new), except that one holding a secret becomes 0600: the daemon refuses a token
// in a file others may read. It returns the mode written.
func (l Loaded) WriteFile(c Config) (os.FileMode, error) {
	t := tree(c)
	for _, u := range l.unknown {
		if parent, leaf, ok := parentOf(t, u.path); ok {
			if _, ours := parent[leaf]; ours {
				continue // one of CedanaScalars: our section of that name replaces it
			}
			parent[leaf] = u.value
		}
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return 0, err
	}
	mode := os.FileMode(0o644)
	if info, err := os.Stat(l.File); err == nil {
		mode = info.Mode().Perm()
	}
	if c.Token != "" || c.Storage.S3.SecretKey != "" {
		mode &^= 0o077
	}
	if err := os.MkdirAll(filepath.Dir(l.File), 0o755); err != nil {
		return 0, fmt.Errorf("create the config directory: %w", err)
	}
	// Synced before the rename, as every file the daemon replaces: a crash leaves the old config
	// or the new one, never an empty file the daemon would refuse to start with. The file becomes
	// the writer's: a token written into it must not go to whoever owned it before.
	if err := atomicfile.WriteOwn(l.File, append(data, '\n'), mode); err != nil {
		return 0, fmt.Errorf("write config %s: %w", l.File, err)
	}
	return mode, nil
}
