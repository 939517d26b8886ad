package broadcast

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestSignal: Notify closes every channel taken before it, and only those.
func TestSignal(t *testing.T) {
	var s Signal
	s.Notify() // nobody waits: nothing to do
	a, b := s.C(), s.C()
	assert.False(t, closed(a))
	s.Notify()
	assert.True(t, closed(a))
	assert.True(t, closed(b))
	c := s.C()
	assert.False(t, closed(c), "a channel taken after a Notify waits for the next one")
	s.Notify()
	assert.True(t, closed(c))
}

// TestSignalConcurrent: waiters and notifiers at once (run with -race).
func TestSignalConcurrent(t *testing.T) {
	var s Signal
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			ch := s.C()
			s.Notify()
			<-ch
		}()
		go func() {
			defer wg.Done()
			s.Notify()
		}()
	}
	wg.Wait()
}
