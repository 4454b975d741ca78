package smarttest

import (
	"sync"
	"time"
)

// Clock is a settable clock for tests, safe for concurrent use. Pass its
// Now method both as Options.Now and as core.Config.Now, so the mock server
// and the Refresher agree on when a token expires.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
