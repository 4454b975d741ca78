package coordtest

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
)

// RunLockLost checks the design rule of every Coordinator: a claim on a
// refresh token outlives the token call it protects. Replica A holds the
// lock of a refresh token and its token call is at the server; replica B's
// request waits for the lock; then fault makes A's lock be lost (the
// engine stopped for longer than lease, the lock's key deleted, A's
// connection ended, ...) and returns once the fault is over. B, which may
// now take the lock, must not send the refresh token A sent: it gets A's
// token once A's call is answered, or fails as transient. 1 token call,
// 0 reuses, and later requests anywhere get A's token.
//
// The replicas' Coordinators are made with b.New(t, lease); the sessions
// live in memory, shared by the replicas, so that only the coordination
// meets the fault. The backend's engine must be one of the test's own.
func RunLockLost(t *testing.T, b Backend, lease time.Duration, fault func(t *testing.T)) {
	c := newCluster(t, b)
	c.memSessions = scs.New().Store
	a, bb := c.replicaWith(b.New(t, lease)), c.replicaWith(b.New(t, lease))
	session, saved := a.login()
	// Expired, not only due: B and C have no old token to fall back on,
	// so they wait for A's outcome rather than fail at once.
	c.clock.Advance(61 * time.Minute)

	entered, blocked := c.blockFirstCall(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(w, r)
	})
	var once sync.Once
	release := func() { once.Do(func() { close(blocked) }) }
	defer release() // a fault that fails the test must not leave A's call (and the server) hanging
	type result struct {
		tok *core.Token
		err error
	}
	fromA, fromB := make(chan result, 1), make(chan result, 1)
	go func() {
		tok, err := a.token(session)
		fromA <- result{tok, err}
	}()
	<-entered
	go func() {
		tok, err := bb.token(session)
		fromB <- result{tok, err}
	}()
	time.Sleep(100 * time.Millisecond) // B waits for A's lock
	fault(t)
	// And replica C's request comes right after the fault, on connections
	// of its own.
	cc := c.replicaWith(b.New(t, lease))
	fromC := make(chan result, 1)
	go func() {
		tok, err := cc.token(session)
		fromC <- result{tok, err}
	}()

	// B and C may act now. A's call stays at the server until they are
	// done, or one's token call has reached the server, or long enough
	// for them to have taken the lock had it been free.
	var resB, resC *result
	for deadline := time.Now().Add(2*lease + 500*time.Millisecond); (resB == nil || resC == nil) && c.srv.RefreshCalls() < 2 && time.Now().Before(deadline); {
		select {
		case r := <-fromB:
			resB = &r
		case r := <-fromC:
			resC = &r
		case <-time.After(10 * time.Millisecond):
		}
	}
	release()
	resA := <-fromA
	if resB == nil {
		r := <-fromB
		resB = &r
	}
	if resC == nil {
		r := <-fromC
		resC = &r
	}
	t.Logf("token calls %d, reuses %d, revoked grants %d", c.srv.RefreshCalls(), c.srv.Reuses(), c.srv.RevokedGrants())
	c.checkNoReuse()
	c.checkRefreshCalls(1)
	if resA.err != nil {
		t.Fatalf("replica A, whose token call was in flight during the fault: %v", resA.err)
	}
	fresh := sameNewToken(t, []*core.Token{resA.tok}, saved)
	for name, res := range map[string]*result{"B": resB, "C": resC} {
		if res.err != nil {
			// Failing as transient is allowed (nothing was sent);
			// redeeming the refresh token again is not.
			if !errors.Is(res.err, core.ErrTransient) {
				t.Errorf("replica %s: %v, want nil or a transient error", name, res.err)
			}
			t.Logf("replica %s failed as transient: %v", name, res.err)
		} else if res.tok.AccessToken != fresh.AccessToken {
			t.Errorf("replica %s got another token than A's", name)
		}
	}

	// Nothing lost: a new replica, and B again, get A's token (transient
	// failures, while connections the fault ended are replaced, are
	// retried as a browser would).
	for i, rep := range []*replica{c.replicaWith(b.New(t, lease)), bb} {
		var tok *core.Token
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			tok, err = rep.token(session)
			if err == nil || !errors.Is(err, core.ErrTransient) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || tok.AccessToken != fresh.AccessToken {
			t.Errorf("request %d after the fault: err %v, A's token %v", i, err, err == nil && tok.AccessToken == fresh.AccessToken)
		}
	}
	c.checkRefreshCalls(1)
	c.checkNoReuse()
}
