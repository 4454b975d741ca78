// Package coordtest is the test suite every core.Coordinator must pass:
// the contract of the interface (a lock that excludes, stays held until
// unlocked, frees a crashed holder's lock, honours its context; records
// that expire; a claim that excludes until released or expired), and the
// behaviour it exists for, with real Refreshers,
// real scs session managers on a shared store, and the strict mock server
// of core/smarttest: a refresh storm across replicas makes one token call,
// a stale session copy across replicas makes none, a holder that dies in
// the middle of its token call does not block the grant, and a restart of
// the coordination server in the middle of a token call neither makes a
// refresh token go out twice nor loses the rotated token. RunLockLost runs
// a fault of the engine's (a pause, a deleted key, ended connections)
// while a holder's token call is in flight: the holder's claim must keep
// every other replica from sending its refresh token.
//
// Packages rediscoord and pgcoord run it against a real Redis and a real
// PostgreSQL; a Coordinator of your own can run it too:
//
//	func TestCoordinator(t *testing.T) {
//		coordtest.Run(t, func(t *testing.T) coordtest.Backend {
//			return coordtest.Backend{New: ..., Crashable: ..., Sessions: ...}
//		})
//	}
package coordtest

import (
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
)

// Backend is what the suite needs of a Coordinator's engine, for one test.
// Every Coordinator and session store a Backend makes within one test
// shares one namespace (a key prefix, a table), which no other test uses.
type Backend struct {
	// New returns a Coordinator as one process of the app makes it, with
	// connections of its own. lease is the lock lease to use when the
	// engine has one (0: its default).
	New func(t *testing.T, lease time.Duration) core.Coordinator
	// Crashable is New for a process that is about to crash: crash makes
	// the Coordinator behave as if its process were killed (its
	// connections end, its lease renewals stop, nothing is unlocked), and
	// returns at once.
	Crashable func(t *testing.T, lease time.Duration) (c core.Coordinator, crash func())
	// Sessions returns a new client of the session store the replicas
	// share (scs's redisstore, pgxstore, …).
	Sessions func(t *testing.T) scs.Store
	// Restart stops and starts the engine's server, and returns once it
	// accepts connections again. Nil skips the restart test.
	Restart func(t *testing.T)
}

// Run runs the whole suite. newBackend is called once per test.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	t.Run("Contract", func(t *testing.T) { RunContract(t, newBackend) })
	t.Run("Replicas", func(t *testing.T) { RunReplicas(t, newBackend) })
}

// shortLease is the lease of the contract tests that depend on one.
const shortLease = 300 * time.Millisecond
