// Package explore decodes a checkpoint's CRIU images, as `crit x` does, with go-criu's crit: the
// process tree, open files, memory mappings, resident pages and sockets, bounded for an answer
// over the API, and prints them as tables.
package explore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/checkpoint-restore/go-criu/v8/crit"

	"github.com/cedana/cedana/errs"
)

// Kinds are what can be decoded, in the order help text lists them.
var Kinds = []string{"ps", "fd", "mem", "rss", "sk"}

// MaxEntries bounds the entries (files, mappings, page runs, sockets) returned per process.
const MaxEntries = 4096

// MaxJSON bounds the size of a decoded answer, in bytes.
const MaxJSON = 4 << 20

// critMu serializes crit's explorers, which cache images in package variables.
var critMu sync.Mutex

// Result is a checkpoint's images decoded.
type Result struct {
	// JSON is the decoded images, in crit's shapes.
	JSON []byte
	// Truncated says some process had more than MaxEntries entries, which were left out.
	Truncated bool
}

// CheckKind refuses a kind that is not one of Kinds.
func CheckKind(kind string) error {
	if !slices.Contains(Kinds, kind) {
		return errs.Invalid("cannot inspect %q: choose one of %s", kind, strings.Join(Kinds, ", "))
	}
	return nil
}

// Dir decodes kind (one of Kinds) from the CRIU images in dir.
func Dir(dir, kind string) (Result, error) {
	if err := CheckKind(kind); err != nil {
		return Result{}, err
	}
	v, truncated, err := decode(dir, kind)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist) {
			return Result{}, errs.Invalid("the checkpoint has no CRIU image %s: it is not a complete CRIU checkpoint", baseName(pe.Path))
		}
		return Result{}, errs.Invalid("the checkpoint's CRIU images cannot be decoded: %w", err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Result{}, fmt.Errorf("encode the decoded images: %w", err)
	}
	if len(data) > MaxJSON {
		return Result{}, errs.Invalid("the decoded %s is %d bytes, over the limit of %d: decode the images with crit (`crit x <dir> %s`)", kind, len(data), MaxJSON, kind)
	}
	return Result{JSON: data, Truncated: truncated}, nil
}

// decode runs crit's explorer for kind, turning a panic on malformed images into an error.
func decode(dir, kind string) (v any, truncated bool, err error) {
	critMu.Lock()
	defer critMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed images: %v", r)
		}
	}()
	c := crit.New(nil, nil, dir, false, true)
	switch kind {
	case "ps":
		v, err = c.ExplorePs()
		return v, false, err
	case "fd":
		fds, err := c.ExploreFds()
		return boundEach(fds, err, func(f *crit.Fd) *[]*crit.File { return &f.Files })
	case "mem":
		mems, err := c.ExploreMems()
		return boundEach(mems, err, func(m *crit.MemMap) *[]*crit.Mem { return &m.Mems })
	case "rss":
		rss, err := c.ExploreRss()
		return boundEach(rss, err, func(r *crit.RssMap) *[]*crit.Rss { return &r.Rsses })
	default: // "sk"
		sks, err := c.ExploreSk()
		return boundEach(sks, err, func(s *crit.Sk) *[]*crit.Socket { return &s.Sockets })
	}
}

// boundEach bounds each process's entries (at entries) and says whether any was cut.
func boundEach[P, E any](procs []*P, err error, entries func(*P) *[]E) (any, bool, error) {
	truncated := false
	for _, p := range procs {
		truncated = bound(entries(p)) || truncated
	}
	return procs, truncated, err
}

// bound cuts *list to MaxEntries and says whether it did.
func bound[T any](list *[]T) bool {
	if len(*list) <= MaxEntries {
		return false
	}
	*list = (*list)[:MaxEntries]
	return true
}

// baseName is the last element of a slash-separated path.
func baseName(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}
