package core_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// storeDown is a shared store whose writes fail while down is set (Redis
// restarting, say), and which counts them.
type storeDown struct {
	*memCoordinator
	down   atomic.Bool
	stores atomic.Int64 // attempts
}

func (s *storeDown) Store(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	s.stores.Add(1)
	if s.down.Load() {
		return errors.New("connection refused")
	}
	return s.memCoordinator.Store(ctx, key, v, ttl)
}

// TestUnrecordedRedemptionKeepsItsLock: replica A redeems a refresh token
// while the shared store cannot be written. A answers its request with the
// new token, but keeps the lock of the redeemed refresh token until its
// record is made: replica B, meeting a stale copy, waits instead of
// redeeming the token again, and then gets A's token.
func TestUnrecordedRedemptionKeepsItsLock(t *testing.T) {
	coord := &storeDown{memCoordinator: newMemCoordinator()}
	rep := newReplicas(t, 2, coord)
	core.SetShareWithin(rep.rs[0], 100*time.Millisecond)
	session, _ := rep.login()
	rep.clock.Advance(time.Hour)

	coord.down.Store(true)
	var fromA *core.Token
	rep.on(1, session, func(stale context.Context, _ *core.Refresher) {
		start := time.Now()
		var err error
		if fromA, err = rep.token(0, session); err != nil {
			t.Fatalf("replica A's refresh: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("replica A's request waited %v for the shared store", d)
		}
	}) // B's stale copy overwrites A's token
	if n := coord.stores.Load(); n < 3 {
		t.Errorf("%d attempts to record the redemption, want retries", n)
	}

	fromB := make(chan *core.Token, 1)
	go func() {
		tok, err := rep.token(1, session)
		if err != nil {
			t.Errorf("replica B on the stale copy: %v", err)
		}
		fromB <- tok
	}()
	select {
	case <-fromB:
		t.Fatal("replica B went ahead while the redemption was not recorded")
	case <-time.After(300 * time.Millisecond):
	}
	coord.down.Store(false) // the store is back: the record is made, then the lock freed
	select {
	case tok := <-fromB:
		if tok != nil && tok.AccessToken != fromA.AccessToken {
			t.Error("replica B did not get replica A's token")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("replica B still waits after the store came back")
	}
	if c := rep.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	rep.checkNoReuse()
}
