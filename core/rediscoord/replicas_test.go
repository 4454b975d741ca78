package rediscoord_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// The tests here run the replicas of one app: each replica is a
// core.Refresher with its own scs.SessionManager, its own Redis pool and
// its own Coordinator, and all of them share one Redis for the sessions
// (scs's redisstore) and the coordination, as processes behind a load
// balancer would. The mock authorization server is strict: a refresh
// token presented twice revokes the grant.

// cluster is the shared part: the mock server, the clock, the Redis key
// prefix of this test, and the settings every replica gets.
type cluster struct {
	t      *testing.T
	clock  *smarttest.Clock // token expiry; Redis leases and session lifetimes run on real time
	srv    *smarttest.Server
	prefix string
	logs   *rediscoord.LogBuffer
	// coordinated replicas get a Coordinator with these options.
	coordinated bool
	coordOpts   []rediscoord.Option
	edit        func(*core.Config)
}

func newCluster(t *testing.T, coordinated bool, coordOpts ...rediscoord.Option) *cluster {
	t.Helper()
	return newClusterIn(t, serverMode{}, coordinated, coordOpts...)
}

// newClusterIn is newCluster against a mock server in mode m.
func newClusterIn(t *testing.T, m serverMode, coordinated bool, coordOpts ...rediscoord.Option) *cluster {
	t.Helper()
	pool := rediscoord.NewTestPool(t)
	c := &cluster{
		t:           t,
		clock:       smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)),
		prefix:      rediscoord.KeyPrefix(t, pool),
		logs:        &rediscoord.LogBuffer{},
		coordinated: coordinated,
		coordOpts:   coordOpts,
	}
	c.srv = smarttest.NewServer(smarttest.Options{Now: c.clock.Now, AccessTokenTTL: time.Hour, Logf: t.Logf,
		AccessOnRefresh: m.access, RevokeRotated: m.revoke})
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

// replica starts a new replica.
func (c *cluster) replica() *replica {
	c.t.Helper()
	pool := rediscoord.NewTestPool(c.t)
	sm := scs.New()
	sm.IdleTimeout = 30 * time.Minute // every request commits, as in production
	sm.Store = redisstore.NewWithPrefix(pool, c.prefix+"scs:")
	return c.restart(sm)
}

// restart returns a replica with a brand-new Refresher (and Coordinator,
// on a new pool) on sm: a restarted process, or another process on the same
// session manager settings. Its local ledger knows nothing.
func (c *cluster) restart(sm *scs.SessionManager) *replica {
	c.t.Helper()
	o := c.srv.Options()
	logger := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := core.Config{
		TokenURL: c.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm, Now: c.clock.Now, Logger: logger,
	}
	if c.coordinated {
		pool := rediscoord.NewTestPool(c.t)
		opts := append([]rediscoord.Option{rediscoord.WithPrefix(c.prefix), rediscoord.WithLogger(logger)}, c.coordOpts...)
		cfg.Coordinator = rediscoord.New(pool, opts...)
	}
	if c.edit != nil {
		c.edit(&cfg)
	}
	r, err := core.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return &replica{c: c, sm: sm, r: r}
}

// login saves a fresh grant in a new session on rep, as the app's callback
// would, and returns the session token (the cookie value).
func (rep *replica) login() (string, *core.Token) {
	rep.c.t.Helper()
	ctx := rep.request("")
	tok := rep.c.srv.Grant()
	if err := rep.r.Save(ctx, tok); err != nil {
		rep.c.t.Fatal(err)
	}
	return rep.sm.Token(ctx), tok
}

// request loads the session as scs's LoadAndSave does at the start of a
// request; end commits it as LoadAndSave does at the end. Both are safe
// from any goroutine (they report with Error, not Fatal).
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

// slowTokenEndpoint makes every token call take d.
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

// storm runs n concurrent requests of session, spread over reps, that
// all load the session before any of them asks for the token, and returns
// their tokens.
func storm(t *testing.T, reps []*replica, session string, n int) []*core.Token {
	t.Helper()
	toks := make([]*core.Token, n)
	var loaded, wg sync.WaitGroup
	start := make(chan struct{})
	loaded.Add(n)
	for i := range n {
		wg.Go(func() {
			rep := reps[i%len(reps)]
			ctx := rep.request(session)
			loaded.Done()
			<-start
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
			t.Fatalf("request %d got another access token than request 0", i)
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

// a. A refresh storm of one session across two replicas, with a slow token
// endpoint: one token call for all of them.
func TestReplicasStorm(t *testing.T) {
	for i := range 2 * len(rotationModes) {
		encrypted, m := i/len(rotationModes) == 1, rotationModes[i%len(rotationModes)]
		name := "plain"
		if encrypted {
			name = "encrypted"
		}
		t.Run(name+"/"+m.String(), func(t *testing.T) {
			c := newClusterIn(t, m, true)
			if encrypted {
				key := bytes.Repeat([]byte{7}, core.EncryptionKeySize)
				c.edit = func(cfg *core.Config) { cfg.EncryptionKeys = [][]byte{key} }
			}
			reps := []*replica{c.replica(), c.replica()}
			session, saved := reps[0].login()
			c.clock.Advance(59*time.Minute + 30*time.Second) // within the leeway
			c.slowTokenEndpoint(100 * time.Millisecond)

			toks := storm(t, reps, session, 200)
			fresh := sameNewToken(t, toks, saved)
			c.checkRefreshCalls(1)
			c.checkNoReuse()

			// Every replica now reads the new token from the shared store.
			for i, rep := range reps {
				tok, err := rep.token(session)
				if err != nil || tok.AccessToken != fresh.AccessToken {
					t.Errorf("replica %d after the storm: err %v, same token %v", i, err, err == nil && tok.AccessToken == fresh.AccessToken)
				}
			}
			c.checkRefreshCalls(1)
		})
	}
}

// staleCopyAcrossReplicas: replica A's slow request loads the session;
// replica B refreshes and commits the rotated token; A's request ends and
// commits its stale copy, with the redeemed refresh token, over B's. Then a
// request reaches A, restarted so that its own ledger knows nothing. It
// returns B's token and the token (or error) of that last request.
func staleCopyAcrossReplicas(t *testing.T, c *cluster) (a *replica, b *replica, session string, fromB *core.Token, tok *core.Token, err error) {
	t.Helper()
	a, b = c.replica(), c.replica()
	session, saved := a.login()
	c.clock.Advance(59*time.Minute + 30*time.Second)

	slow := a.request(session) // A's slow request holds the old copy
	fromB, err = b.token(session)
	if err != nil {
		t.Fatalf("replica B's refresh: %v", err)
	}
	if fromB.RefreshToken == saved.RefreshToken {
		t.Fatal("replica B's refresh did not rotate")
	}
	c.checkRefreshCalls(1)
	a.sm.Put(slow, "last_page", "/chart") // the app writes to the session
	a.end(slow)                           // the stale copy overwrites B's

	a = c.restart(a.sm) // A's ledger is empty
	tok, err = a.token(session)
	return a, b, session, fromB, tok, err
}

// b. The stale copy across replicas is saved by the shared ledger.
func TestReplicasStaleCopy(t *testing.T) { forModes(t, rotationModes, testReplicasStaleCopy) }

func testReplicasStaleCopy(t *testing.T, m serverMode) {
	c := newClusterIn(t, m, true)
	a, b, session, fromB, tok, err := staleCopyAcrossReplicas(t, c)
	if err != nil {
		t.Fatalf("replica A's request on the stale copy: %v", err)
	}
	if tok.AccessToken != fromB.AccessToken {
		t.Fatal("replica A did not get the token replica B refreshed")
	}
	c.checkRefreshCalls(1)
	c.checkNoReuse()

	// The session holds B's token again, and after its expiry the grant
	// refreshes once more, once, whichever replicas the requests reach.
	c.clock.Advance(59*time.Minute + 30*time.Second)
	c.slowTokenEndpoint(50 * time.Millisecond)
	toks := storm(t, []*replica{a, b}, session, 20)
	sameNewToken(t, toks, fromB)
	c.checkRefreshCalls(2)
	c.checkNoReuse()
}

// d. The control: without a Coordinator the same stale copy makes replica
// A redeem the refresh token B already redeemed, and the strict server
// revokes the grant. This proves the test above would catch the bug.
func TestReplicasStaleCopyWithoutCoordinator(t *testing.T) {
	forModes(t, rotationModes, testReplicasStaleCopyWithoutCoordinator)
}

func testReplicasStaleCopyWithoutCoordinator(t *testing.T, m serverMode) {
	c := newClusterIn(t, m, false)
	_, _, _, _, _, err := staleCopyAcrossReplicas(t, c)
	if c.srv.Reuses() < 1 && !errors.Is(err, core.ErrReauthRequired) {
		t.Fatalf("without a Coordinator the stale copy caused no reuse (err %v): the scenario does not exercise the bug", err)
	}
	t.Logf("without a Coordinator: %d reuses, %d grants revoked, err %v", c.srv.Reuses(), c.srv.RevokedGrants(), err)
}

// c. A token call slower than the lock's lease: the holder renews the
// lease, so the other replica waits instead of redeeming the same refresh
// token (the oauth2-proxy bug).
func TestReplicasTokenCallLongerThanLease(t *testing.T) {
	forModes(t, rotationModes, testReplicasTokenCallLongerThanLease)
}

func testReplicasTokenCallLongerThanLease(t *testing.T, m serverMode) {
	c := newClusterIn(t, m, true, rediscoord.WithLease(300*time.Millisecond), rediscoord.WithRetryInterval(10*time.Millisecond))
	reps := []*replica{c.replica(), c.replica()}
	session, saved := reps[0].login()
	c.clock.Advance(59*time.Minute + 30*time.Second)
	c.slowTokenEndpoint(1200 * time.Millisecond)

	toks := storm(t, reps, session, 20)
	sameNewToken(t, toks, saved)
	c.checkRefreshCalls(1)
	c.checkNoReuse()
}

// The control of c: a lease that is not renewed expires during the slow
// token call; without the refresh token's claim, the other replica then
// redeems the same refresh token. With the claim (the design rule: safety
// does not depend on renewals), it waits for the holder's record.
func TestReplicasTokenCallLongerThanLeaseWithoutRenewal(t *testing.T) {
	for _, claims := range []bool{false, true} {
		opts := []rediscoord.Option{rediscoord.WithLease(300 * time.Millisecond), rediscoord.WithRetryInterval(10 * time.Millisecond), rediscoord.WithoutRenewal()}
		if !claims {
			opts = append(opts, rediscoord.WithoutClaims())
		}
		c := newCluster(t, true, opts...)
		reps := []*replica{c.replica(), c.replica()}
		session, _ := reps[0].login()
		c.clock.Advance(59*time.Minute + 30*time.Second)
		c.slowTokenEndpoint(1200 * time.Millisecond)

		var wg sync.WaitGroup
		for _, rep := range reps {
			wg.Go(func() { rep.token(session) })
		}
		wg.Wait()
		switch {
		case !claims && c.srv.Reuses() < 1:
			t.Fatalf("with an unrenewed lease and no claims, %d refresh calls and no reuse: the test above would not catch the bug", c.srv.RefreshCalls())
		case claims:
			c.checkRefreshCalls(1)
			c.checkNoReuse()
		}
	}
}
