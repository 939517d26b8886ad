package cli

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/cedana/cedana/config"
	"github.com/cedana/cedana/storage"
)

// ConfigCmd is `cedana config ...`.
type ConfigCmd struct {
	Show ConfigShowCmd `cmd:"" help:"Print the configuration in effect (defaults, config.json, --config, environment, flags) as JSON, secrets masked."`
}

// ConfigShowCmd is `cedana config show`.
type ConfigShowCmd struct {
	Sources bool `help:"Print where each value that is not the default came from, instead."`
}

// Run prints the configuration this command loaded, as the daemon would see it in this environment.
func (c *ConfigShowCmd) Run(loaded config.Loaded, env Env) error {
	cfg, sources := withAWSEnv(loaded, env.Getenv)
	if c.Sources {
		w := newTable(env.Stdout, "KEY", "SOURCE")
		keys := make([]string, 0, len(sources))
		for k := range sources {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			src := sources[k]
			if src == config.SourceFile {
				src += " " + loaded.File
			}
			fmt.Fprintf(w, "%s\t%s\n", k, src)
		}
		return w.Flush()
	}
	data, err := json.MarshalIndent(config.Masked(cfg), "", "  ")
	if err != nil {
		return fmt.Errorf("encode the configuration: %w", err)
	}
	_, err = fmt.Fprintln(env.Stdout, string(data))
	return err
}

// withAWSEnv is the loaded configuration with the S3 keys it leaves empty filled from the AWS_*
// variables, as the daemon fills them, and the sources updated.
func withAWSEnv(l config.Loaded, getenv func(string) string) (config.Config, map[string]string) {
	cfg, sources := l.Config, map[string]string{}
	for k, v := range l.Sources {
		sources[k] = v
	}
	s3 := &cfg.Storage.S3
	got := storage.Config{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: s3.Insecure}.FromEnv(getenv)
	for _, f := range []struct {
		key     string
		ours    *string
		fromEnv string
	}{
		{"storage.s3.endpoint", &s3.Endpoint, got.Endpoint},
		{"storage.s3.region", &s3.Region, got.Region},
		{"storage.s3.access_key", &s3.AccessKey, got.AccessKey},
		{"storage.s3.secret_key", &s3.SecretKey, got.SecretKey},
	} {
		if *f.ours != f.fromEnv {
			*f.ours, sources[f.key] = f.fromEnv, "env AWS_*"
		}
	}
	if s3.Insecure != got.Insecure {
		s3.Insecure, sources["storage.s3.insecure"] = got.Insecure, "env AWS_*"
	}
	return cfg, sources
}
