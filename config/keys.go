package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// CedanaAliases maps the keys of Cedana's config.json (github.com/cedana/cedana, pkg/config) that
// mean the same as one of ours to our key. Any other key either knows is an unknown key: warned
// about and ignored.
var CedanaAliases = map[string]string{
	"aws.access_key_id":     "storage.s3.access_key",
	"aws.secret_access_key": "storage.s3.secret_key",
	"aws.region":            "storage.s3.region",
	"aws.endpoint":          "storage.s3.endpoint",
	"log_level":             "log.level",
	"connection.auth_token": "token",
}

// CedanaScalars are keys of Cedana's config.json that name one of our sections but hold a plain
// value there, with what the value meant to Cedana: it is ignored with a warning saying so.
var CedanaScalars = map[string]string{
	"metrics": "Cedana's telemetry switch; set metrics.address (e.g. \":9464\") to serve Prometheus metrics",
}

// schema is the tree of Config's JSON keys: a section maps to its keys, a leaf to nil.
type schema map[string]schema

// keys is Config's schema.
var keys = schemaOf(reflect.TypeFor[Config]())

func schemaOf(t reflect.Type) schema {
	s := schema{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			s[name] = schemaOf(f.Type)
		} else {
			s[name] = nil
		}
	}
	return s
}

// lookup finds key in s as encoding/json does: exactly, else ignoring case.
func (s schema) lookup(key string) (schema, bool) {
	if sub, ok := s[key]; ok {
		return sub, true
	}
	for k, sub := range s {
		if strings.EqualFold(k, key) {
			return sub, true
		}
	}
	return nil, false
}

// paths lists every key of s, sections and leaves, dotted, under prefix.
func (s schema) paths(prefix string) []string {
	var out []string
	for k, sub := range s {
		out = append(out, prefix+k)
		out = append(out, sub.paths(prefix+k+".")...)
	}
	sort.Strings(out)
	return out
}

// unknownKey is a key of a config object that Config does not have.
type unknownKey struct {
	path  string
	value any
}

// aliased is a value found under one of CedanaAliases' keys.
type aliased struct {
	from, to string
	value    any
}

// sift removes from obj (a decoded JSON object at prefix, whose keys s describes) the keys Config
// lacks, returning the unknown ones and those that are aliases of ours.
func sift(obj map[string]any, prefix string, s schema) (unknown []unknownKey, aliases []aliased) {
	for k, v := range obj {
		full := prefix + k
		if sub, ok := s.lookup(k); ok {
			m, isObj := v.(map[string]any)
			_, scalar := CedanaScalars[full]
			switch {
			case isObj && sub != nil:
				u, a := sift(m, full+".", sub)
				unknown, aliases = append(unknown, u...), append(aliases, a...)
			case scalar && sub != nil && v != nil:
				delete(obj, k)
				unknown = append(unknown, unknownKey{path: full, value: v})
			}
			continue
		}
		delete(obj, k)
		if to, ok := CedanaAliases[full]; ok {
			aliases = append(aliases, aliased{from: full, to: to, value: v})
			continue
		}
		if m, isObj := v.(map[string]any); isObj && aliasSection(full) {
			u, a := sift(m, full+".", schema{})
			unknown, aliases = append(unknown, u...), append(aliases, a...)
			continue
		}
		unknown = append(unknown, unknownKey{path: full, value: v})
	}
	sort.Slice(unknown, func(i, j int) bool { return unknown[i].path < unknown[j].path })
	sort.Slice(aliases, func(i, j int) bool { return aliases[i].from < aliases[j].from })
	return unknown, aliases
}

// aliasSection tells whether some alias lies under the section path.
func aliasSection(path string) bool {
	for from := range CedanaAliases {
		if strings.HasPrefix(from, path+".") {
			return true
		}
	}
	return false
}

// applyAliases sets each alias's value under our key in obj, unless our key is set: then ours
// wins, with a warning when the two differ.
func applyAliases(obj map[string]any, aliases []aliased, source string, warn func(string)) {
	for _, a := range aliases {
		parent, leaf, ok := parentOf(obj, a.to)
		if !ok {
			continue // our section is not an object: decoding says so
		}
		if cur, set := parent[leaf]; set {
			if !reflect.DeepEqual(cur, a.value) {
				warn(fmt.Sprintf("%s: %s and %s (its Cedana name) are both set and differ: using %s", source, a.to, a.from, a.to))
			}
			continue
		}
		parent[leaf] = a.value
	}
}

// parentOf returns the object holding the dotted key path in obj (created as needed) and the
// key's last name; false when a level is set to something other than an object.
func parentOf(obj map[string]any, path string) (map[string]any, string, bool) {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return obj, path, true
	}
	parent, ok := ensureObject(obj, path[:i])
	return parent, path[i+1:], ok
}

// ensureObject returns the object at the dotted path in obj, creating missing levels; false when
// a level is set to something other than an object.
func ensureObject(obj map[string]any, path string) (map[string]any, bool) {
	for name := range strings.SplitSeq(path, ".") {
		next, set := obj[name]
		if !set {
			m := map[string]any{}
			obj[name] = m
			obj = m
			continue
		}
		m, isObj := next.(map[string]any)
		if !isObj {
			return nil, false
		}
		obj = m
	}
	return obj, true
}

// unknownWarning says that path is ignored, suggesting the known key it is closest to.
func unknownWarning(source, path string) string {
	msg := fmt.Sprintf("%s: unknown key %q ignored", source, path)
	if note, ok := CedanaScalars[path]; ok {
		return msg + " (" + note + ")"
	}
	if near := nearestKey(path); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return msg
}

// nearestKey is the known key (or alias) a mistyped path most likely meant: one a typo or two
// away, or one that ends with path (a key written outside its section); "" when none is close.
func nearestKey(path string) string {
	var aliases []string
	for from := range CedanaAliases {
		aliases = append(aliases, from)
	}
	sort.Strings(aliases)
	known := append(keys.paths(""), aliases...) // ours first
	best, bestDist := "", 3
	if len(path) < 6 {
		bestDist = 2
	}
	for _, k := range known {
		if k == path {
			continue // a known key given a value of the wrong kind (CedanaScalars)
		}
		if strings.HasSuffix(k, "."+path) {
			return k
		}
		if d := editDistance(path, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions, deletions, substitutions
// and transpositions of adjacent bytes each cost one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
