package core_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// memCoordinator is a core.Coordinator in memory, standing in for a shared
// store between replicas in one process.
type memCoordinator struct {
	mu     sync.Mutex
	locks  map[string]chan struct{}
	values map[string][]byte
	claims map[string]*memClaim // by key
	fail   error                // returned by every call when set
}

func newMemCoordinator() *memCoordinator {
	return &memCoordinator{locks: map[string]chan struct{}{}, values: map[string][]byte{}, claims: map[string]*memClaim{}}
}

func (m *memCoordinator) Lock(ctx context.Context, key string) (func(), error) {
	for {
		m.mu.Lock()
		if m.fail != nil {
			m.mu.Unlock()
			return nil, m.fail
		}
		held, ok := m.locks[key]
		if !ok {
			ch := make(chan struct{})
			m.locks[key] = ch
			m.mu.Unlock()
			return func() {
				m.mu.Lock()
				delete(m.locks, key)
				close(ch)
				m.mu.Unlock()
			}, nil
		}
		m.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (m *memCoordinator) Load(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.claims[key]; ok && time.Now().Before(c.until) {
		return []byte("claimed"), true, m.fail
	}
	v, ok := m.values[key]
	return v, ok, m.fail
}

type memClaim struct{ until time.Time }

// Claim claims key for ttl, on real time.
func (m *memCoordinator) Claim(_ context.Context, key string, ttl time.Duration) (func(), bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, false, m.fail
	}
	if c, ok := m.claims[key]; ok && time.Now().Before(c.until) {
		return nil, false, nil
	}
	mine := &memClaim{until: time.Now().Add(ttl)}
	m.claims[key] = mine
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.claims[key] == mine {
			delete(m.claims, key)
		}
	}, true, nil
}

func (m *memCoordinator) Store(_ context.Context, key string, v []byte, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.values[key] = v
	return nil
}

// replicas is a strict mock server and n replicas of an app: each has its
// own session manager and Refresher, and all share one session store and,
// unless coord is nil, one Coordinator.
type replicas struct {
	*fixture // replica 0
	sms      []*scs.SessionManager
	rs       []*core.Refresher
}

func newReplicas(t *testing.T, n int, coord core.Coordinator, opts ...smarttest.Options) *replicas {
	var o smarttest.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	f := newFixture(t, o, func(c *core.Config) { c.Coordinator = coord })
	rep := &replicas{fixture: f, sms: []*scs.SessionManager{f.sm}, rs: []*core.Refresher{f.r}}
	for range n - 1 {
		rep.add(coord)
	}
	return rep
}

// add starts one more replica (a fresh process: empty local ledger).
func (rep *replicas) add(coord core.Coordinator) int {
	sm := scs.New()
	sm.IdleTimeout = rep.sm.IdleTimeout
	sm.Store = rep.sm.Store
	o := rep.srv.Options()
	r, err := core.New(core.Config{TokenURL: rep.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm, Now: rep.clock.Now, Coordinator: coord})
	if err != nil {
		rep.t.Fatal(err)
	}
	rep.sms = append(rep.sms, sm)
	rep.rs = append(rep.rs, r)
	return len(rep.rs) - 1
}

// on runs a request of session on replica i: load, fn, commit.
func (rep *replicas) on(i int, session string, fn func(ctx context.Context, r *core.Refresher)) {
	ctx, err := rep.sms[i].Load(context.Background(), session)
	if err != nil {
		rep.t.Fatal(err)
	}
	fn(ctx, rep.rs[i])
	if rep.sms[i].Status(ctx) == scs.Modified {
		rep.sms[i].Commit(ctx)
	}
}

func (rep *replicas) token(i int, session string) (tok *core.Token, err error) {
	rep.on(i, session, func(ctx context.Context, r *core.Refresher) { tok, err = r.Token(ctx) })
	return tok, err
}

func TestReplicasStorm(t *testing.T) { forModes(t, rotationModes, testReplicasStorm) }

func testReplicasStorm(t *testing.T, m serverMode) {
	rep := newReplicas(t, 3, newMemCoordinator(), m.options(smarttest.Options{}))
	session, _ := rep.login()
	rep.srv.SetTokenHook(slowTokens)
	rep.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	toks := make([]string, 150)
	for i := range toks {
		wg.Go(func() {
			tok, err := rep.token(i%3, session)
			if err != nil {
				t.Error(err)
				return
			}
			toks[i] = tok.AccessToken
		})
	}
	wg.Wait()
	for i := range toks {
		if toks[i] != toks[0] {
			t.Fatalf("request %d got another token", i)
		}
	}
	if c := rep.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	rep.checkNoReuse()
}

// TestReplicasStaleCopy: replica A's slow request writes a stale copy back
// after replica B rotated the token; a freshly started replica C, which
// never saw the rotation, must not send the old refresh token.
func TestReplicasStaleCopy(t *testing.T) { forModes(t, rotationModes, testReplicasStaleCopy) }

func testReplicasStaleCopy(t *testing.T, m serverMode) {
	for _, tt := range []struct {
		name   string
		coord  func() core.Coordinator
		reuses bool
	}{
		{"shared coordinator", func() core.Coordinator { return newMemCoordinator() }, false},
		{"no coordinator (control: the bug the coordinator prevents)", func() core.Coordinator { return nil }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			coord := tt.coord()
			rep := newReplicas(t, 2, coord, m.options(smarttest.Options{}))
			session, _ := rep.login()
			rep.clock.Advance(time.Hour)
			rep.on(0, session, func(slow context.Context, _ *core.Refresher) {
				if _, err := rep.token(1, session); err != nil { // B rotates and commits
					t.Fatal(err)
				}
			}) // A commits its stale copy
			c := rep.add(coord)
			_, err := rep.token(c, session)
			if tt.reuses {
				if rep.srv.Reuses() == 0 || !errors.Is(err, core.ErrReauthRequired) {
					t.Fatalf("without a coordinator the stale copy should be redeemed again: %v, %d reuses", err, rep.srv.Reuses())
				}
				return
			}
			if err != nil || rep.srv.RefreshCalls() != 1 {
				t.Fatalf("stale copy on a new replica: %v, %d calls", err, rep.srv.RefreshCalls())
			}
			rep.clock.Advance(time.Hour)
			if _, err := rep.token(c, session); err != nil || rep.srv.RefreshCalls() != 2 {
				t.Fatalf("next refresh: %v, %d calls", err, rep.srv.RefreshCalls())
			}
			rep.checkNoReuse()
		})
	}
}

// TestCoordinatorFailureKeepsToken: when the shared store is down, no
// refresh token is sent (another replica might have redeemed it) and the
// token is kept.
func TestCoordinatorFailureKeepsToken(t *testing.T) {
	coord := newMemCoordinator()
	rep := newReplicas(t, 1, coord)
	session, _ := rep.login()
	rep.clock.Advance(time.Hour)
	coord.fail = errors.New("connection refused")
	_, err := rep.token(0, session)
	var ce *core.CoordinatorError
	if !errors.Is(err, core.ErrTransient) || !errors.As(err, &ce) || core.StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want a transient CoordinatorError", err)
	}
	if rep.srv.TokenCalls() != 0 {
		t.Errorf("%d token calls while the coordinator was down", rep.srv.TokenCalls())
	}
	coord.fail = nil
	if _, err := rep.token(0, session); err != nil || rep.srv.RefreshCalls() != 1 {
		t.Fatalf("after recovery: %v, %d calls", err, rep.srv.RefreshCalls())
	}
	rep.checkNoReuse()
}

// TestReplicasNoRotation: a server that keeps the refresh token (no
// rotation) must not leave records that make later refreshes loop.
func TestReplicasNoRotation(t *testing.T) {
	coord := newMemCoordinator()
	rep := newReplicas(t, 2, coord, smarttest.Options{NoRotation: true})
	session, _ := rep.login()
	for i := range 4 {
		rep.clock.Advance(time.Hour)
		if _, err := rep.token(i%2, session); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		c := rep.add(coord) // a fresh replica, knowing only the shared records
		if _, err := rep.token(c, session); err != nil {
			t.Fatalf("fresh replica after refresh %d: %v", i, err)
		}
	}
	if c := rep.srv.RefreshCalls(); c != 4 {
		t.Errorf("refresh calls = %d, want 4", c)
	}
	rep.checkNoReuse()
}

// slowCoordinator delays Store, to model a shared store slower than the
// refresh's remaining time.
type slowCoordinator struct {
	*memCoordinator
	delay time.Duration
}

func (s slowCoordinator) Store(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.memCoordinator.Store(ctx, key, v, ttl)
}

// TestReplicasLateAnswerIsShared: a token answer that arrives near the end
// of RefreshTimeout is still recorded for the other replicas.
//
// The answer comes after 1 s of a 2 s RefreshTimeout, and recording it takes
// 1.2 s: more than the refresh has left, less than a Coordinator call's own
// deadline. The margins are wide, so that a busy machine cannot push the
// answer itself past RefreshTimeout.
func TestReplicasLateAnswerIsShared(t *testing.T) {
	coord := slowCoordinator{newMemCoordinator(), 1200 * time.Millisecond}
	rep := newReplicas(t, 1, coord)
	session, _ := rep.login()
	o := rep.srv.Options()
	r, err := core.New(core.Config{TokenURL: rep.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: rep.sm, Now: rep.clock.Now, Coordinator: coord,
		RefreshTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rep.rs[0] = r
	rep.srv.SetTokenHook(func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		time.Sleep(time.Second)
		next.ServeHTTP(w, req)
	})
	rep.clock.Advance(time.Hour)
	rep.on(0, session, func(slow context.Context, _ *core.Refresher) {
		if _, err := rep.token(0, session); err != nil {
			t.Fatal(err)
		}
	}) // a stale copy written back
	rep.srv.SetTokenHook(nil)
	c := rep.add(coord)
	if _, err := rep.token(c, session); err != nil || rep.srv.RefreshCalls() != 1 {
		t.Fatalf("stale copy on a fresh replica: %v, %d calls", err, rep.srv.RefreshCalls())
	}
	rep.checkNoReuse()
}
