package adapters_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cedana/cedana/adapters"
)

// TestProgressChanged: every change closes the channel taken before it; a nil Progress ignores
// changes.
func TestProgressChanged(t *testing.T) {
	p := &adapters.Progress{}
	for _, change := range []func(){func() { p.Start("archive", 10) }, func() { p.Add(4) }, p.Finish} {
		ch := p.Changed()
		select {
		case <-ch:
			t.Fatal("closed before the change")
		default:
		}
		change()
		<-ch
	}
	assert.Equal(t, adapters.Snapshot{Phase: "archive", Done: 4, Total: 10, Finished: true}, p.Snapshot())
	var none *adapters.Progress
	none.Add(1)
}
