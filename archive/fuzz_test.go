package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzExtract feeds arbitrary bytes to Extract: it must not panic, must
// either succeed or return an error, must never write outside its
// destination, must clean up after itself on error and must only ever
// create regular 0600 files.
func FuzzExtract(f *testing.F) {
	valid := buildTar(f, regular("pages-1.img", "some page data\x00\x00\x00\x01"), regular("checkpoint.json", `{"pid":1}`), regular("empty.img", ""))
	hostile := [][]byte{
		buildTar(f, regular("ok.img", "x"), regular("../x", "pwned")),
		buildTar(f, regular("sub/file", "pwned")),
		buildTar(f, tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "../sentinel"}}, regular("link", "pwned")),
		buildTar(f, tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "../sentinel"}}),
		buildTar(f, tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}}),
		buildTar(f, regular("dup", "1"), regular("dup", "2")),
		buildTar(f, regular(".", "x")),
		// Files archived in parts (see PartName): out of order, missing
		// part 0, clashing with a whole file, degenerate base names.
		buildTar(f, regular(PartName("p.img", 1), "b"), regular(PartName("p.img", 0), "a")),
		buildTar(f, regular(PartName("p.img", 0), "a"), regular("p.img", "whole")),
		buildTar(f, regular(PartName(".", 0), "a"), regular(PartName("..", 0), "a")),
	}
	// A valid archive with a file in parts and another file between them.
	parts := buildTar(f, regular(PartName("pages-1.img", 0), "abc"), regular("core.img", "c"), regular(PartName("pages-1.img", 1), "def"))
	for _, c := range archiveCodecs {
		f.Add(compress(f, c, parts))
	}
	for _, c := range archiveCodecs {
		f.Add(compress(f, c, valid))
		for _, h := range hostile {
			f.Add(compress(f, c, h))
		}
		v := compress(f, c, valid)
		f.Add(v[:len(v)/2])
	}
	f.Add([]byte("not an archive"))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))

	f.Fuzz(func(t *testing.T, data []byte) {
		sb := newSandbox(t)
		raw, err := Extract(bytes.NewReader(data), sb.out, 2)
		sb.checkUntouched(t)

		entries, rerr := os.ReadDir(sb.out)
		require.NoError(t, rerr)
		if err != nil {
			require.Empty(t, entries, "files left behind after error %v", err)
			require.Zero(t, raw)
			return
		}
		var total int64
		for _, e := range entries {
			fi, err := os.Lstat(filepath.Join(sb.out, e.Name()))
			require.NoError(t, err)
			require.True(t, fi.Mode().IsRegular(), "%s is %s", e.Name(), fi.Mode())
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			total += fi.Size()
		}
		require.Equal(t, total, raw)
	})
}
