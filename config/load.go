package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Options say what LoadWith reads besides the defaults.
type Options struct {
	// Dir holds config.json; "" means CEDANA_CONFIG_DIR or DefaultDir.
	Dir string
	// Getenv reads the environment (os.Getenv in production).
	Getenv func(string) string
	// JSON is a configuration given on the command line (--config), merged over the file's: its
	// keys win over the file's, and the environment wins over both, as in Cedana.
	JSON string
}

// Source names where a key's value came from, in Loaded.Sources.
const (
	SourceFile = "file"
	SourceJSON = "--config"
	SourceEnv  = "env"
	SourceFlag = "flag"
)

// Loaded is a configuration and what loading it noticed.
type Loaded struct {
	Config Config
	// File is the config file's path, whether or not it exists.
	File string
	// Warnings name each unknown key (once) and each alias that differs from our key.
	Warnings []string
	// Sources maps the dotted keys whose value is not the default to where it came from
	// (SourceFile, SourceJSON, SourceEnv, SourceFlag).
	Sources map[string]string
	// unknown are the file's unknown keys, which WriteFile keeps.
	unknown []unknownKey
}

// Load builds the configuration from the defaults, dir's config.json if it exists, and the
// environment as read by getenv. An empty dir means CEDANA_CONFIG_DIR or DefaultDir. Warnings are
// dropped: LoadWith returns them.
func Load(dir string, getenv func(string) string) (Config, error) {
	l, err := LoadWith(Options{Dir: dir, Getenv: getenv})
	return l.Config, err
}

// LoadWith builds the configuration from the defaults, the config file, o.JSON and the
// environment, in that order.
func LoadWith(o Options) (Loaded, error) {
	path := File(o.Dir, o.Getenv)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return Loaded{Config: Default(), File: path}, fmt.Errorf("read config %s: %w", path, err)
	}
	l, err := load(data, "config "+path, o)
	l.File = path
	return l, err
}

// Parse builds the configuration from the defaults, data (the contents of a config.json; nil when
// there is none) and the environment as read by getenv. It reads nothing else.
func Parse(data []byte, getenv func(string) string) (Config, error) {
	l, err := load(data, "config", Options{Getenv: getenv})
	return l.Config, err
}

// load is LoadWith on the file's contents data, naming the file source in its errors.
func load(data []byte, source string, o Options) (Loaded, error) {
	l := Loaded{Config: Default(), Sources: map[string]string{}}
	warn := func(msg string) { l.Warnings = append(l.Warnings, msg) }
	seen := flatten(l.Config)
	mark := func(src string) {
		now := flatten(l.Config)
		for k, v := range now {
			if seen[k] != v {
				l.Sources[k] = src
			}
		}
		seen = now
	}
	if data != nil {
		unknown, _, err := decode(data, &l.Config, source, warn)
		if err != nil {
			return l, fmt.Errorf("%s: %w", source, err)
		}
		l.unknown = unknown
		mark(SourceFile)
	}
	if strings.TrimSpace(o.JSON) != "" {
		_, obj, err := decode([]byte(o.JSON), &l.Config, "--config", warn)
		if err != nil {
			return l, fmt.Errorf("--config: %w", err)
		}
		if hasKey(obj, "token") {
			return l, errors.New("--config: a token on the command line is visible to every local user (ps): set CEDANA_TOKEN or token_file instead")
		}
		mark(SourceJSON)
	}
	if err := applyEnv(&l.Config, o.Getenv); err != nil {
		return l, err
	}
	mark(SourceEnv)
	l.Config.Protocol = strings.ToLower(l.Config.Protocol) // Cedana writes TCP, UNIX
	return l, l.Config.Validate()
}

// hasKey tells whether obj holds key, compared as encoding/json does.
func hasKey(obj map[string]any, key string) bool {
	for k := range obj {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// decode reads data, one JSON object, into cfg. Keys cfg lacks are warned about (through warn,
// each naming source) and ignored, except Cedana's names of our keys (CedanaAliases), which set
// ours. Anything after the object is an error, and syntax errors say where they are. It returns
// the unknown keys and the object as decoded, without them.
func decode(data []byte, cfg *Config, source string, warn func(string)) ([]unknownKey, map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	err := dec.Decode(&raw)
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil, errors.New("the file is empty: write a JSON object ({} for the defaults)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, errors.New("the JSON ends too early: an object or a string is not closed")
	case errors.As(err, &syntax):
		return nil, nil, fmt.Errorf("%w (at byte %d)", err, syntax.Offset)
	case err != nil:
		return nil, nil, err
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, nil, fmt.Errorf("more after the JSON object, at byte %d: a config file holds one object", len(data)-len(rest))
	}
	obj, isObj := raw.(map[string]any)
	if !isObj {
		return nil, nil, json.Unmarshal(data, cfg) // null is fine; anything else names its type
	}
	unknown, aliases := sift(obj, "", keys)
	for _, u := range unknown {
		warn(unknownWarning(source, u.path))
	}
	applyAliases(obj, aliases, source, warn)
	clean, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, err
	}
	strict := json.NewDecoder(bytes.NewReader(clean))
	strict.DisallowUnknownFields()
	if err := strict.Decode(cfg); err != nil {
		return nil, nil, err
	}
	return unknown, obj, nil
}

// flatten maps each dotted leaf key of c to its value in JSON.
func flatten(c Config) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, isObj := v.(map[string]any); isObj {
			for k, sub := range m {
				walk(prefix+k+".", sub)
			}
			return
		}
		b, _ := json.Marshal(v)
		out[strings.TrimSuffix(prefix, ".")] = string(b)
	}
	walk("", tree(c))
	return out
}
