package all_test

import (
	"go/build/constraint"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/features"
)

// TestGateFiles: each known runtime has a gate file <name>.go that imports runtimes/<name> under
// `!custom || runtimes || runtimes.<name>`, the build tag its declaration must carry. (`just
// matrix` checks that the binaries hold exactly the runtimes their tags ask for.)
func TestGateFiles(t *testing.T) {
	for _, name := range features.KnownRuntimes {
		t.Run(name, func(t *testing.T) {
			path := name + ".go"
			src, err := os.ReadFile(path)
			require.NoError(t, err, "runtime %s has no gate file", name)
			file, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly|parser.ParseComments)
			require.NoError(t, err)

			var expr constraint.Expr
			for _, line := range strings.Split(string(src), "\n") {
				if constraint.IsGoBuild(line) {
					expr, err = constraint.Parse(line)
					require.NoError(t, err)
				}
			}
			require.NotNil(t, expr, "%s has no //go:build line", path)
			want := "!custom || runtimes || " + features.BuildTag(name)
			assert.Equal(t, want, expr.String())

			require.Len(t, file.Imports, 1)
			imported, err := strconv.Unquote(file.Imports[0].Path.Value)
			require.NoError(t, err)
			assert.Equal(t, "github.com/cedana/cedana/runtimes/"+name, imported)
		})
	}
	gates, err := filepath.Glob("*.go")
	require.NoError(t, err)
	assert.Len(t, gates, len(features.KnownRuntimes)+2, "all.go, this test and one gate file per known runtime")
}
