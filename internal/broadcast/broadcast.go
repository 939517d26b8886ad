// Package broadcast tells every waiter at once that something changed, in a form select can wait
// on together with a context or a timer: a channel that the next change closes.
package broadcast

import "sync"

// Signal is the change notification of some state. The zero value is ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel that the next Notify closes. Take it before looking at the state the signal
// guards: a change after the look then closes the channel, and none is missed.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every waiter of the channels C returned so far.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
