package core_test

import (
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// flightGate holds a refresher's flights until a given number of callers
// have joined one, so that a storm's requests all share one token call
// however slowly a busy machine schedules their goroutines. Without it a
// straggler that arrives after the flight ended starts a second one (a
// second token call after a failure) and the counts a test checks vary.
type flightGate struct {
	t      *testing.T
	mu     sync.Mutex
	want   int
	joined int
	all    chan struct{} // closed when joined reaches want
}

// newFlightGate installs a gate on r that holds nothing until expect is
// called.
func newFlightGate(t *testing.T, r *core.Refresher) *flightGate {
	g := &flightGate{t: t}
	g.expect(0)
	core.SetFlightHooks(r, g.join, g.wait)
	return g
}

// expect makes the next flights wait until n callers joined flights from
// now on.
func (g *flightGate) expect(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.want, g.joined, g.all = n, 0, make(chan struct{})
	if n == 0 {
		close(g.all)
	}
}

func (g *flightGate) join() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.joined++
	if g.joined == g.want {
		close(g.all)
	}
}

// wait holds a starting flight until the expected callers joined. It gives
// up after a minute (reporting it), so that a bug that keeps callers out
// fails the test instead of hanging it.
func (g *flightGate) wait() {
	g.mu.Lock()
	all := g.all
	g.mu.Unlock()
	select {
	case <-all:
	case <-time.After(time.Minute):
		g.mu.Lock()
		defer g.mu.Unlock()
		g.t.Errorf("only %d of %d callers joined the flight within a minute", g.joined, g.want)
	}
}
