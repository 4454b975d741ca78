package coordtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// RunReplicas checks what a Coordinator is for: the replicas of an app,
// each a core.Refresher with its own scs.SessionManager and Coordinator,
// sharing one session store and one coordination engine, against a strict
// mock server that revokes the grant on any reuse of a refresh token.
func RunReplicas(t *testing.T, newBackend func(t *testing.T) Backend) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Backend)
	}{
		{"Storm", func(t *testing.T, b Backend) { stormAcross(t, b, false) }},
		{"StormEncrypted", func(t *testing.T, b Backend) { stormAcross(t, b, true) }},
		{"StaleCopy", staleCopy},
		{"TwoLaunches", twoLaunches},
		{"HolderDiesMidCall", holderDies},
		{"RestartMidCall", restartMidCall},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newBackend(t)) })
	}
}

// RunRestart runs only the restart test of RunReplicas, for a backend
// whose Restart must not disturb the other tests (a server of its own).
func RunRestart(t *testing.T, newBackend func(t *testing.T) Backend) {
	restartMidCall(t, newBackend(t))
}

// cluster is the shared part of a test: the mock server, its clock, the
// backend, and the settings every replica gets.
type cluster struct {
	t     *testing.T
	b     Backend
	clock *smarttest.Clock // token expiry; leases and session lifetimes run on real time
	srv   *smarttest.Server
	logs  *syncBuffer
	keys  [][]byte
	// commitErrors are tolerated (logged) rather than failures: a restart
	// of a database that also holds the sessions fails the commits of the
	// requests that meet a dead connection.
	commitErrors bool
	// memSessions, when set, is the session store of every replica (an
	// in-memory one shared by all), instead of the backend's: the fault
	// tests break the coordination engine only.
	memSessions scs.Store
	// refreshTimeout is every replica's Config.RefreshTimeout (0: the
	// default).
	refreshTimeout time.Duration
}

func newCluster(t *testing.T, b Backend) *cluster {
	t.Helper()
	c := &cluster{
		t:     t,
		b:     b,
		clock: smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)),
		logs:  &syncBuffer{},
	}
	c.srv = smarttest.NewServer(smarttest.Options{Now: c.clock.Now, AccessTokenTTL: time.Hour, Logf: t.Logf})
	t.Cleanup(c.srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("refresher logs:\n%s", c.logs)
		}
	})
	return c
}

// replica is one process of the app.
type replica struct {
	c  *cluster
	sm *scs.SessionManager
	r  *core.Refresher
}

// replica starts a process with a Coordinator from the backend.
func (c *cluster) replica() *replica {
	c.t.Helper()
	return c.replicaWith(c.b.New(c.t, 0))
}

func (c *cluster) replicaWith(coord core.Coordinator) *replica {
	c.t.Helper()
	sm := scs.New()
	sm.IdleTimeout = 30 * time.Minute // every request commits, as in production
	if c.memSessions != nil {
		sm.Store = c.memSessions
	} else {
		sm.Store = c.b.Sessions(c.t)
	}
	return c.restart(sm, coord)
}

// restart returns a replica with a brand-new Refresher on sm: a restarted
// process. Its local ledger knows nothing.
func (c *cluster) restart(sm *scs.SessionManager, coord core.Coordinator) *replica {
	c.t.Helper()
	o := c.srv.Options()
	cfg := core.Config{
		TokenURL: c.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm, Now: c.clock.Now,
		Logger:         slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		EncryptionKeys: c.keys,
		Coordinator:    coord,
		RefreshTimeout: c.refreshTimeout,
	}
	r, err := core.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return &replica{c: c, sm: sm, r: r}
}

// login saves a fresh grant in a new session on rep, as the app's callback
// does, and returns the session token (the cookie's value).
func (rep *replica) login() (string, *core.Token) {
	rep.c.t.Helper()
	ctx := rep.request("")
	tok := rep.c.srv.Grant()
	if err := rep.r.Save(ctx, tok); err != nil {
		rep.c.t.Fatal(err)
	}
	return rep.sm.Token(ctx), tok
}

// request loads the session as scs's LoadAndSave does when a request
// starts; end commits it as LoadAndSave does when it ends.
func (rep *replica) request(session string) context.Context {
	ctx, err := rep.sm.Load(context.Background(), session)
	if err != nil {
		rep.c.t.Errorf("loading the session: %v", err)
		return context.Background()
	}
	return ctx
}

func (rep *replica) end(ctx context.Context) {
	if rep.sm.Status(ctx) == scs.Modified {
		if _, _, err := rep.sm.Commit(ctx); err != nil {
			if rep.c.commitErrors {
				rep.c.t.Logf("committing the session (the request answers 500): %v", err)
				return
			}
			rep.c.t.Errorf("committing the session: %v", err)
		}
	}
}

// token runs one whole request on rep that asks for the session's token.
func (rep *replica) token(session string) (*core.Token, error) {
	ctx := rep.request(session)
	defer rep.end(ctx)
	return rep.r.Token(ctx)
}

func (c *cluster) slowTokenEndpoint(d time.Duration) {
	c.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(d)
		next.ServeHTTP(w, r)
	})
}

func (c *cluster) checkNoReuse() {
	c.t.Helper()
	if n := c.srv.Reuses(); n != 0 {
		c.t.Errorf("the server saw %d reused refresh tokens", n)
	}
	if n := c.srv.RevokedGrants(); n != 0 {
		c.t.Errorf("the server revoked %d grants", n)
	}
}

func (c *cluster) checkRefreshCalls(want int) {
	c.t.Helper()
	if n := c.srv.RefreshCalls(); n != want {
		c.t.Errorf("%d refresh calls, want %d", n, want)
	}
}

// dueSoon moves the clock into the refresh leeway of the hour-long token.
func (c *cluster) dueSoon() { c.clock.Advance(59*time.Minute + 30*time.Second) }

// storm runs n concurrent requests of session, spread over reps, which
// all load the session before any of them asks for the token.
func storm(t *testing.T, reps []*replica, session string, n int) []*core.Token {
	t.Helper()
	toks := make([]*core.Token, n)
	var loaded, wg sync.WaitGroup
	start := make(chan struct{})
	loaded.Add(n)
	for i := range n {
		wg.Go(func() {
			rep := reps[i%len(reps)]
			ctx, err := rep.sm.Load(context.Background(), session)
			loaded.Done()
			<-start
			if err != nil {
				t.Errorf("request %d on replica %d: loading the session: %v", i, i%len(reps), err)
				return
			}
			defer rep.end(ctx)
			tok, err := rep.r.Token(ctx)
			if err != nil {
				t.Errorf("request %d on replica %d: %v", i, i%len(reps), err)
				return
			}
			toks[i] = tok
		})
	}
	loaded.Wait()
	close(start)
	wg.Wait()
	return toks
}

// sameNewToken checks that every token is the same, rotated from old.
func sameNewToken(t *testing.T, toks []*core.Token, old *core.Token) *core.Token {
	t.Helper()
	var first *core.Token
	for i, tok := range toks {
		if tok == nil {
			continue
		}
		if first == nil {
			first = tok
		}
		if tok.AccessToken != first.AccessToken {
			t.Fatalf("request %d got another access token than the first", i)
		}
	}
	if first == nil {
		t.Fatal("no request got a token")
	}
	if first.AccessToken == old.AccessToken || first.RefreshToken == old.RefreshToken {
		t.Fatal("the token was not refreshed and rotated")
	}
	return first
}

// stormAcross: 300 requests of one session at expiry, over three replicas,
// with a slow token endpoint: one token call, and every replica then reads
// the new token.
func stormAcross(t *testing.T, b Backend, encrypted bool) {
	c := newCluster(t, b)
	if encrypted {
		c.keys = [][]byte{bytes.Repeat([]byte{7}, core.EncryptionKeySize)}
	}
	reps := []*replica{c.replica(), c.replica(), c.replica()}
	session, saved := reps[0].login()
	c.dueSoon()
	c.slowTokenEndpoint(100 * time.Millisecond)

	fresh := sameNewToken(t, storm(t, reps, session, 300), saved)
	c.checkRefreshCalls(1)
	c.checkNoReuse()
	for i, rep := range reps {
		tok, err := rep.token(session)
		if err != nil || tok.AccessToken != fresh.AccessToken {
			t.Errorf("replica %d after the storm: err %v, same token %v", i, err, err == nil && tok.AccessToken == fresh.AccessToken)
		}
	}
	c.checkRefreshCalls(1)
}

// staleCopy: replica A's slow request loads the session; replica B
// refreshes and commits the rotated token; A's request ends and writes its
// stale copy (with the redeemed refresh token) over B's. A request then
// reaches A restarted, whose own ledger knows nothing: it gets B's token
// from the shared record, with no token call. After the next expiry the
// grant refreshes once more, once, across the replicas.
func staleCopy(t *testing.T, b Backend) {
	c := newCluster(t, b)
	a, bb := c.replica(), c.replica()
	session, saved := a.login()
	c.dueSoon()

	slow := a.request(session)
	fromB, err := bb.token(session)
	if err != nil {
		t.Fatalf("replica B's refresh: %v", err)
	}
	if fromB.RefreshToken == saved.RefreshToken {
		t.Fatal("replica B's refresh did not rotate")
	}
	c.checkRefreshCalls(1)
	a.sm.Put(slow, "last_page", "/chart")
	a.end(slow) // the stale copy overwrites B's

	a = c.restart(a.sm, c.b.New(t, 0))
	tok, err := a.token(session)
	if err != nil {
		t.Fatalf("replica A's request on the stale copy: %v", err)
	}
	if tok.AccessToken != fromB.AccessToken {
		t.Fatal("replica A did not get the token replica B refreshed")
	}
	c.checkRefreshCalls(1)
	c.checkNoReuse()

	c.dueSoon()
	c.slowTokenEndpoint(50 * time.Millisecond)
	sameNewToken(t, storm(t, []*replica{a, bb}, session, 30), fromB)
	c.checkRefreshCalls(2)
	c.checkNoReuse()
}

// blockFirstCall makes the first token call wait, once it has reached the
// server, until release is closed; then answer decides what happens to it.
// entered is closed when it arrives.
func (c *cluster) blockFirstCall(answer func(w http.ResponseWriter, r *http.Request, next http.Handler)) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		first := false
		once.Do(func() { first = true })
		if !first {
			next.ServeHTTP(w, r)
			return
		}
		close(entered)
		<-release
		answer(w, r, next)
	})
	return entered, release
}

// holderDies: replica A takes the lock, claims the refresh token and
// sends its token request; A's process dies before the server acts on it.
// Nobody can know that the server did not act: B must not send the refresh
// token before A's call's RefreshTimeout has certainly passed (A's claim
// expires), and must then make the one token call that rotates the grant,
// without waiting for ever. The delay is what the design rule costs a
// session whose replica died in its token call: RefreshTimeout and the
// claim's margin (1 s) after A sent, here with RefreshTimeout 2 s. (Had
// the server acted on A's request, B's call would be a reuse: that is the
// outcome-unknown case no client can avoid; see core.ErrOutcomeUnknown.)
func holderDies(t *testing.T, b Backend) {
	const lease, refreshTimeout = time.Second, 2 * time.Second
	c := newCluster(t, b)
	c.refreshTimeout = refreshTimeout
	coordA, crash := b.Crashable(t, lease)
	a, bb := c.replicaWith(coordA), c.replicaWith(b.New(t, lease))
	session, saved := a.login()
	c.dueSoon()

	entered, release := c.blockFirstCall(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
		// A's process is gone: its request never reaches the grant.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":"server_error"}`)
	})
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		a.token(session) // A's result does not matter: A is dead
	}()
	<-entered
	sent := time.Now()
	crash()

	// B's requests meanwhile get the old access token (still valid) at
	// once, and send nothing; then one refreshes.
	var tok *core.Token
	var early int
	var slowest time.Duration
	for deadline := sent.Add(refreshTimeout + 8*time.Second); ; time.Sleep(50 * time.Millisecond) {
		start := time.Now()
		got, err := bb.token(session)
		slowest = max(slowest, time.Since(start))
		if err == nil && got.AccessToken != saved.AccessToken {
			tok = got
			break
		}
		if c.srv.RefreshCalls() > 1 {
			t.Fatalf("replica B sent the refresh token but did not get a new token: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B did not refresh within %v of A's send: %v", deadline.Sub(sent), err)
		}
		early++
	}
	waited := time.Since(sent)
	close(release)
	<-aDone
	sameNewToken(t, []*core.Token{tok}, saved)
	t.Logf("replica B refreshed %v after A sent its request and died (RefreshTimeout %v, lease %v; %d requests meanwhile got the old token)",
		waited.Round(time.Millisecond), refreshTimeout, lease, early)
	if waited < refreshTimeout {
		t.Errorf("replica B sent the refresh token %v after A sent it, before A's RefreshTimeout (%v) had passed", waited, refreshTimeout)
	}
	if limit := refreshTimeout + 2*time.Second; waited > limit {
		t.Errorf("replica B refreshed %v after A died, want within %v", waited, limit)
	}
	// The old access token is still valid: no request waited for A's
	// claim (the first waited for A's lock, freed after the lease).
	if slowest > lease+500*time.Millisecond {
		t.Errorf("a request with a valid token took %v meanwhile", slowest)
	}
	c.checkRefreshCalls(2) // A's, which the server never acted on, and B's
	c.checkNoReuse()
	if again, err := c.replica().token(session); err != nil || again.AccessToken != tok.AccessToken {
		t.Errorf("a later request: err %v, got B's token %v", err, err == nil && again.AccessToken == tok.AccessToken)
	}
	c.checkRefreshCalls(2)
}

// restartMidCall: replica A holds the lock and its token call is at the
// server; replica B's request waits for the lock; the coordination server
// restarts (every connection ends, and with them anything held only by a
// connection). The server then rotates A's grant. B must not redeem the
// same refresh token, and the new token must not be lost: B, and later
// requests anywhere, get A's token with no other token call.
func restartMidCall(t *testing.T, b Backend) {
	if b.Restart == nil {
		t.Skip("this backend cannot restart its server")
	}
	c := newCluster(t, b)
	a, bb := c.replica(), c.replica()
	session, saved := a.login()
	c.dueSoon()
	c.commitErrors = true

	entered, release := c.blockFirstCall(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(w, r)
	})
	var wg sync.WaitGroup
	var tokA, tokB *core.Token
	var errA, errB error
	wg.Go(func() { tokA, errA = a.token(session) })
	<-entered
	wg.Go(func() { tokB, errB = bb.token(session) })
	time.Sleep(200 * time.Millisecond) // B waits for A's lock
	b.Restart(t)
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()

	if errA != nil {
		t.Fatalf("replica A, whose token call was in flight during the restart: %v", errA)
	}
	fresh := sameNewToken(t, []*core.Token{tokA}, saved)
	if errB != nil {
		// Failing as transient is allowed (nothing was sent); redeeming
		// the refresh token again is not.
		if ce := (*core.CoordinatorError)(nil); !errors.As(errB, &ce) {
			t.Errorf("replica B: %v, want nil or a *core.CoordinatorError", errB)
		}
		t.Logf("replica B failed as transient: %v", errB)
	} else if tokB.AccessToken != fresh.AccessToken {
		t.Error("replica B got another token than A's")
	}
	c.checkRefreshCalls(1)
	c.checkNoReuse()

	// Nothing lost: a new replica, and B again, get A's token. (After a
	// second, pools check their idle connections, which the restart ended,
	// before handing them out.)
	time.Sleep(1100 * time.Millisecond)
	for i, rep := range []*replica{c.replica(), bb} {
		tok, err := rep.token(session)
		if err != nil || tok.AccessToken != fresh.AccessToken {
			t.Errorf("request %d after the restart: err %v, A's token %v", i, err, err == nil && tok.AccessToken == fresh.AccessToken)
		}
	}
	c.checkRefreshCalls(1)
	c.checkNoReuse()
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
