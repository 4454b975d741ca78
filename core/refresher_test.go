package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func newClock() *smarttest.Clock {
	return smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
}

// fixture is a mock server, a real scs session manager (memstore, with
// IdleTimeout so that every request commits, as in production) and a
// refresher wired to both.
type fixture struct {
	t     *testing.T
	clock *smarttest.Clock
	srv   *smarttest.Server
	sm    *scs.SessionManager
	r     *core.Refresher
	logs  *bytes.Buffer
}

func newFixture(t *testing.T, opts smarttest.Options, edit ...func(*core.Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: newClock(), logs: &bytes.Buffer{}}
	opts.Now = f.clock.Now
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = time.Hour
	}
	f.srv = smarttest.NewServer(opts)
	t.Cleanup(f.srv.Close)
	f.sm = scs.New()
	f.sm.IdleTimeout = 30 * time.Minute
	o := f.srv.Options()
	cfg := core.Config{
		TokenURL: f.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: f.sm, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.AuthMethod == core.None {
		cfg.ClientSecret = ""
	}
	for _, e := range edit {
		e(&cfg)
	}
	r, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	return f
}

// lockedWriter is w for writers on several goroutines (a logger's).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// String returns what was written, when w is a fmt.Stringer (a
// strings.Builder, a bytes.Buffer), read while no write is under way.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.(fmt.Stringer).String()
}

// login saves a fresh grant in a new session, as an app's callback would,
// and returns the session token (the cookie value).
func (f *fixture) login() (string, *core.Token) {
	f.t.Helper()
	ctx := f.request("")
	tok := f.srv.Grant()
	if err := f.r.Save(ctx, tok); err != nil {
		f.t.Fatal(err)
	}
	return f.sm.Token(ctx), tok
}

// request loads the session as scs's LoadAndSave does at the start of a
// request; end commits it as LoadAndSave does at the end.
func (f *fixture) request(session string) context.Context {
	f.t.Helper()
	ctx, err := f.sm.Load(context.Background(), session)
	if err != nil {
		f.t.Fatal(err)
	}
	return ctx
}

func (f *fixture) end(ctx context.Context) {
	f.t.Helper()
	if f.sm.Status(ctx) == scs.Modified {
		if _, _, err := f.sm.Commit(ctx); err != nil {
			f.t.Fatal(err)
		}
	}
}

// token runs one request that asks for the session's token.
func (f *fixture) token(session string) (*core.Token, error) {
	ctx := f.request(session)
	defer f.end(ctx)
	return f.r.Token(ctx)
}

func (f *fixture) checkNoReuse() {
	f.t.Helper()
	if n := f.srv.Reuses(); n != 0 {
		f.t.Errorf("the server saw %d reused refresh tokens", n)
	}
	if n := f.srv.RevokedGrants(); n != 0 {
		f.t.Errorf("the server revoked %d grants", n)
	}
}

func TestTokenValidIsNotRefreshed(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, saved := f.login()
	f.clock.Advance(58 * time.Minute)
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != saved.AccessToken || f.srv.RefreshCalls() != 0 {
		t.Fatalf("a token with 2 minutes left was refreshed")
	}
}

func TestRefreshRotatesAndPersists(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, saved := f.login()
	f.clock.Advance(59*time.Minute + 30*time.Second) // within the 60 s leeway
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == saved.AccessToken || tok.RefreshToken == saved.RefreshToken {
		t.Fatal("token not rotated")
	}
	if tok.Patient != saved.Patient || tok.Extra["need_patient_banner"] != true {
		t.Errorf("launch context lost: %+v", tok)
	}
	if !tok.Expiry.Equal(f.clock.Now().Add(time.Hour)) {
		t.Errorf("expiry %v, want %v", tok.Expiry, f.clock.Now().Add(time.Hour))
	}
	// The next request reads the rotated token from the store.
	again, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	if again.AccessToken != tok.AccessToken || f.srv.RefreshCalls() != 1 {
		t.Fatalf("rotated token not persisted: refresh calls %d", f.srv.RefreshCalls())
	}
	info, _ := f.r.Info(f.request(session))
	if info.Refreshes != 1 || info.Patient != saved.Patient || !info.HasRefreshToken {
		t.Errorf("Info = %+v", info)
	}
	f.checkNoReuse()
}

func TestRefreshAnswerVariants(t *testing.T) {
	tests := []struct {
		name string
		opts smarttest.Options
	}{
		{"no rotation keeps the refresh token", smarttest.Options{NoRotation: true}},
		{"context omitted on refresh is kept", smarttest.Options{OmitContextOnRefresh: true}},
		{"client_secret_basic", smarttest.Options{AuthMethod: core.ClientSecretBasic}},
		{"public client", smarttest.Options{AuthMethod: core.None}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			session, saved := f.login()
			for i := range 3 {
				f.clock.Advance(time.Hour)
				tok, err := f.token(session)
				if err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				if tok.Patient != saved.Patient || tok.Extra["need_patient_banner"] != true {
					t.Errorf("launch context lost: %+v", tok)
				}
				if tt.opts.NoRotation && tok.RefreshToken != saved.RefreshToken {
					t.Errorf("refresh token changed without rotation")
				}
			}
			if f.srv.RefreshCalls() != 3 {
				t.Errorf("refresh calls = %d, want 3", f.srv.RefreshCalls())
			}
			f.checkNoReuse()
		})
	}
}

func TestShortLivedTokenIsNotRefreshedOnEveryRequest(t *testing.T) {
	f := newFixture(t, smarttest.Options{AccessTokenTTL: 30 * time.Second})
	session, _ := f.login()
	for range 20 { // 20 s of requests, one a second
		if _, err := f.token(session); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
	}
	if n := f.srv.RefreshCalls(); n != 0 {
		t.Errorf("%d refreshes in the first 20 s of a 30 s token", n)
	}
	f.clock.Advance(5 * time.Second) // 25 s: within a quarter of the lifetime
	if _, err := f.token(session); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.RefreshCalls(); n != 1 {
		t.Errorf("refresh calls = %d, want 1", n)
	}
}

// TestStorm: 500 concurrent requests of one session at expiry make one
// token call, and all of them get the new token.
func TestStorm(t *testing.T) { forModes(t, rotationModes, testStorm) }

func testStorm(t *testing.T, m serverMode) {
	f := newFixture(t, m.options(smarttest.Options{}))
	session, saved := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(50 * time.Millisecond) // let the requests pile up
		next.ServeHTTP(w, r)
	})
	f.clock.Advance(time.Hour)
	const n = 500
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			ctx := f.request(session)
			<-start
			tok, err := f.r.Token(ctx)
			errs[i] = err
			if err == nil {
				got[i] = tok.AccessToken
			}
			f.end(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if got[i] != got[0] || got[i] == saved.AccessToken {
			t.Fatalf("request %d got another token", i)
		}
	}
	if c := f.srv.RefreshCalls(); c != 1 {
		t.Errorf("token calls = %d, want 1", c)
	}
	tok, err := f.token(session)
	if err != nil || tok.AccessToken != got[0] || f.srv.RefreshCalls() != 1 {
		t.Errorf("after the storm: %v, %v, %d calls", tok, err, f.srv.RefreshCalls())
	}
	f.checkNoReuse()
}

// TestStaleSessionCopy: a slow request loads the session, a refresh rotates
// the token, then the slow request commits its stale copy (scs: last writer
// wins). No later request may send the old refresh token.
func TestStaleSessionCopy(t *testing.T) { forModes(t, rotationModes, testStaleSessionCopy) }

func testStaleSessionCopy(t *testing.T, m serverMode) {
	f := newFixture(t, m.options(smarttest.Options{}))
	session, saved := f.login()

	slow := f.request(session) // loads T1
	if _, err := f.r.Token(slow); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	t2, err := f.token(session) // refreshes: T1 → T2, commits T2
	if err != nil {
		t.Fatal(err)
	}
	f.end(slow) // writes T1 back over T2

	stale, _ := f.r.Info(f.request(session))
	if stale.Expiry.After(f.clock.Now()) {
		t.Fatal("test setup: the store does not hold the stale copy")
	}
	// The next request finds the redeemed T1 and gets T2 without a call.
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != t2.AccessToken || f.srv.RefreshCalls() != 1 {
		t.Fatalf("stale copy: got another token or %d calls", f.srv.RefreshCalls())
	}

	// Once more, and this time T2 expires before anyone reads the session.
	slow = f.request(session) // loads T2
	f.clock.Advance(time.Hour)
	t3, err := f.token(session) // T2 → T3
	if err != nil {
		t.Fatal(err)
	}
	f.end(slow)                 // writes T2 back
	f.clock.Advance(time.Hour)  // T3 expires too
	t4, err := f.token(session) // holds stale T2: must follow T2 → T3 and refresh T3
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []*core.Token{saved, t2, t3} {
		if t4.AccessToken == old.AccessToken {
			t.Fatal("expired token handed out")
		}
	}
	if c := f.srv.RefreshCalls(); c != 3 {
		t.Errorf("refresh calls = %d, want 3", c)
	}
	f.checkNoReuse()
}

// TestWaiterCancellation: a waiter whose request is cancelled stops waiting
// at once; the refresh it shared goes on and is stored.
func TestWaiterCancellation(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		entered <- struct{}{}
		<-release
		next.ServeHTTP(w, r)
	})
	f.clock.Advance(time.Hour)

	leaderCtx, cancelLeader := context.WithCancel(f.request(session))
	leaderDone := make(chan error, 1)
	go func() { _, err := f.r.Token(leaderCtx); leaderDone <- err }()
	<-entered

	waiterCtx, cancelWaiter := context.WithCancel(f.request(session))
	waiterDone := make(chan error, 1)
	go func() { _, err := f.r.Token(waiterCtx); waiterDone <- err }()
	cancelWaiter()
	if err := <-waiterDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	cancelLeader() // even the request that started the refresh goes away
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled leader: %v", err)
	}
	close(release)

	// The refresh completes and is committed by itself.
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := f.r.Info(f.request(session))
		if err == nil && info.Refreshes == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refresh never stored: %+v, %v", info, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := f.token(session); err != nil {
		t.Fatal(err)
	}
	if c := f.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	f.checkNoReuse()
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		opts      smarttest.Options
		hook      func(w http.ResponseWriter, r *http.Request, next http.Handler)
		class     error
		keepToken bool
	}{
		{
			name: "invalid_grant removes the token",
			hook: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				io.WriteString(w, `{"error":"invalid_grant","error_description":"expired"}`)
			},
			class: core.ErrReauthRequired,
		},
		{
			name: "503 keeps the token",
			hook: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(503)
			},
			class: core.ErrTransient, keepToken: true,
		},
		{
			name: "HTML 200 keeps the token",
			hook: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<html>maintenance</html>")
			},
			class: core.ErrTransient, keepToken: true,
		},
		{
			name: "connection dropped keeps the token",
			hook: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			},
			class: core.ErrTransient, keepToken: true,
		},
		{
			name: "invalid_client keeps the token",
			hook: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(401)
				io.WriteString(w, `{"error":"invalid_client"}`)
			},
			class: core.ErrMisconfigured, keepToken: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			core.SetSleep(f.r, (&sleeps{}).sleep)
			session, _ := f.login()
			f.srv.SetTokenHook(tt.hook)
			f.clock.Advance(time.Hour)
			_, err := f.token(session)
			if !errors.Is(err, tt.class) {
				t.Fatalf("err = %v, want %v", err, tt.class)
			}
			_, err = f.r.Info(f.request(session))
			if kept := err == nil; kept != tt.keepToken {
				t.Fatalf("token kept = %v, want %v (%v)", kept, tt.keepToken, err)
			}
			if tt.keepToken {
				f.srv.SetTokenHook(nil)
				f.clock.Advance(time.Minute) // the grant's backoff, if any, is over
				if _, err := f.token(session); err != nil {
					t.Fatalf("after the fault: %v", err)
				}
			}
			f.checkNoReuse()
		})
	}
}

func TestNoToken(t *testing.T) {
	f := newFixture(t, smarttest.Options{NoRefreshToken: true})
	if _, err := f.token(""); !errors.Is(err, core.ErrNoToken) || !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("empty session: %v", err)
	}
	if _, err := f.r.Token(context.Background()); !errors.Is(err, core.ErrNoSession) {
		t.Errorf("no session: %v", err)
	}
	session, _ := f.login()
	f.clock.Advance(59*time.Minute + 30*time.Second)
	if _, err := f.token(session); err != nil {
		t.Errorf("a token without refresh token that is still valid: %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.token(session); !errors.Is(err, core.ErrNoRefreshToken) || !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("expired without refresh token: %v", err)
	}
	if _, err := f.token(session); !errors.Is(err, core.ErrNoToken) {
		t.Errorf("the expired token was not removed: %v", err)
	}

	ctx := f.request("")
	f.sm.Put(ctx, core.DefaultSessionKey, "not a token")
	if _, err := f.r.Token(ctx); !errors.Is(err, core.ErrCorruptSession) || !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("corrupt value: %v", err)
	}
	if f.sm.Exists(ctx, core.DefaultSessionKey) {
		t.Error("corrupt value not removed")
	}
	if err := f.r.Save(ctx, &core.Token{}); !errors.Is(err, core.ErrInvalidToken) {
		t.Errorf("Save of an empty token: %v", err)
	}
}

func TestSaveRenewsSessionToken(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	ctx := f.request("")
	f.sm.Put(ctx, "x", 1)
	if _, _, err := f.sm.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	before := f.sm.Token(ctx)
	if err := f.r.Save(ctx, f.srv.Grant()); err != nil {
		t.Fatal(err)
	}
	if after := f.sm.Token(ctx); after == before || after == "" {
		t.Error("Save did not renew the session token")
	}
}

func fhirGet(t *testing.T, f *fixture, ctx context.Context) (*http.Response, error) {
	t.Helper()
	return f.r.Client(ctx).Get(f.srv.FHIRBaseURL + "/Patient/123")
}

func TestClient401Replay(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	ctx := f.request(session)

	resp, err := fhirGet(t, f, ctx)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()

	f.srv.ExpireAccessTokens() // the server rejects a token we think is valid
	resp, err = fhirGet(t, f, ctx)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET after 401: %v %v", resp, err)
	}
	resp.Body.Close()

	f.srv.ExpireAccessTokens()
	body := `{"resourceType":"Observation","status":"final"}`
	req, _ := http.NewRequest("POST", f.srv.FHIRBaseURL+"/Observation", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err = f.r.Client(ctx).Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST replay: %v %v", resp, err)
	}
	echoed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(echoed), `"status":"final"`) {
		t.Errorf("replayed body lost: %s", echoed)
	}
	if c := f.srv.RefreshCalls(); c != 2 {
		t.Errorf("refresh calls = %d, want 2", c)
	}

	// A body that cannot be replayed: the 401 comes back as it was, and
	// the token is refreshed for the next request.
	f.srv.ExpireAccessTokens()
	req, _ = http.NewRequest("POST", f.srv.FHIRBaseURL+"/Observation", io.NopCloser(strings.NewReader(body)))
	resp, err = f.r.Client(ctx).Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("non-replayable POST: %v %v", resp, err)
	}
	resp.Body.Close()
	if c := f.srv.RefreshCalls(); c != 3 {
		t.Errorf("refresh calls = %d after a non-replayable 401, want 3", c)
	}
	f.checkNoReuse()
}

func TestClientReplaysOnce(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	var calls atomic.Int32
	always401 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(401)
	}))
	defer always401.Close()
	resp, err := f.r.Client(f.request(session)).Get(always401.URL + "/Patient/1")
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("got %v %v, want the 401", resp, err)
	}
	resp.Body.Close()
	if calls.Load() != 2 || f.srv.RefreshCalls() != 1 {
		t.Errorf("FHIR calls = %d (want 2), refresh calls = %d (want 1)", calls.Load(), f.srv.RefreshCalls())
	}
}

// Test401Storm: concurrent calls that get 401 for the same access token
// make one refresh.
func Test401Storm(t *testing.T) { forModes(t, rotationModes, test401Storm) }

func test401Storm(t *testing.T, m serverMode) {
	f := newFixture(t, m.options(smarttest.Options{}))
	session, _ := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(20 * time.Millisecond)
		next.ServeHTTP(w, r)
	})
	f.srv.ExpireAccessTokens()
	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range n {
		wg.Go(func() {
			ctx := f.request(session)
			defer f.end(ctx)
			resp, err := fhirGet(t, f, ctx)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	if c := f.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	f.checkNoReuse()
}

func TestClientReauthError(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant"}`)
	})
	f.srv.ExpireAccessTokens()
	_, err := fhirGet(t, f, f.request(session))
	if !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("err = %v, want ErrReauthRequired", err)
	}
}

// TestNoSecretsInLogsOrErrors runs failure scenarios with debug logging and
// checks that no token or secret appears in logs or errors.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	f := newFixture(t, smarttest.Options{ClientSecret: "client-secret-XYZ"}, func(c *core.Config) {
		// For slowDrip; long enough that a retry still fits after a slow
		// first attempt on a busy machine.
		c.RefreshTimeout = 2 * time.Second
	})
	core.SetSleep(f.r, (&sleeps{}).sleep)
	session, saved := f.login()
	secrets := []string{saved.AccessToken, saved.RefreshToken, "client-secret-XYZ"}
	var errs []string
	echo := func(code int, ctype string) func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			r.ParseForm()
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(code)
			io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"`+
				r.PostForm.Get("refresh_token")+" "+r.PostForm.Get("client_secret")+`"}`)
		}
	}
	hooks := []func(w http.ResponseWriter, r *http.Request, next http.Handler){
		func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			r.ParseForm()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			// A careless server echoing what it got.
			io.WriteString(w, `{"error":"invalid_request","error_description":"bad secret `+r.PostForm.Get("client_secret")+`"}`)
		},
		func(w http.ResponseWriter, r *http.Request, next http.Handler) { w.WriteHeader(502) },
		func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			r.ParseForm()
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>"+r.PostForm.Get("refresh_token")+"</html>")
		},
		// Retried faults: the retry logs carry the errors too.
		echo(503, "application/json"),
		echo(429, "text/plain"),
		echo(500, "text/html"),
		reset,
		slowDrip,
		func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			next.ServeHTTP(w, r)
		},
		// A lost answer, then the strict server's invalid_grant.
		lose(reset),
		nil,
	}
	for _, h := range hooks {
		f.clock.Advance(time.Hour)
		f.srv.SetTokenHook(h)
		tok, err := f.token(session)
		if err != nil {
			errs = append(errs, err.Error())
		} else {
			secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
		}
	}
	// A request the token must not go to.
	if _, err := f.r.Client(f.request(session)).Get("http://fhir.example/Patient/1"); err != nil {
		errs = append(errs, err.Error())
	}
	out := f.logs.String() + strings.Join(errs, "\n")
	for _, want := range []string{"token refreshed", "retrying", "processed it is unknown", "re-authorization required", "not sending the access token"} {
		if !strings.Contains(out, want) {
			t.Errorf("scenario missing: no %q in\n%s", want, out)
		}
	}
	if !strings.Contains(f.logs.String(), "token refreshed") {
		t.Fatalf("no debug logs captured:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %q leaked:\n%s", s[:4], out)
		}
	}
}

// TestRotatedAnswerWithBadExpiresIn: a 2xx answer means the server already
// rotated the refresh token. An answer that is usable but for its
// expires_in must be kept: discarding it would make the next refresh send
// the rotated-away refresh token again.
func TestRotatedAnswerWithBadExpiresIn(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, saved := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		io.WriteString(w, strings.Replace(rec.Body.String(), `"expires_in":3600`, `"expires_in":-5`, 1))
	})
	f.clock.Advance(time.Hour)
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == saved.RefreshToken || !tok.Expiry.IsZero() {
		t.Fatalf("want the rotated token with an unknown expiry, got %v", tok)
	}
	f.srv.SetTokenHook(nil)
	f.srv.ExpireAccessTokens() // without an expiry, the next refresh follows a 401
	resp, err := fhirGet(t, f, f.request(session))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET after 401: %v, %v", resp, err)
	}
	resp.Body.Close()
	if c := f.srv.RefreshCalls(); c != 2 {
		t.Errorf("refresh calls = %d, want 2", c)
	}
	f.checkNoReuse()
}

// TestMaxConcurrentRefreshes: many sessions expiring together make one
// token call each, never more than the cap at once.
func TestMaxConcurrentRefreshes(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.MaxConcurrentRefreshes = 3 })
	var inFlight, peak atomic.Int32
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		next.ServeHTTP(w, r)
		inFlight.Add(-1)
	})
	const sessions = 30
	ids := make([]string, sessions)
	for i := range ids {
		ids[i], _ = f.login()
	}
	f.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for _, id := range ids {
		for range 3 {
			wg.Go(func() {
				if _, err := f.token(id); err != nil {
					failed.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	if c := f.srv.RefreshCalls(); c != sessions {
		t.Errorf("token calls = %d, want %d", c, sessions)
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("peak concurrent token calls = %d, cap 3", p)
	}
	f.checkNoReuse()
}

// TestValidTokenSurvivesTransientFailure: within Leeway the old token still
// works, so a failed refresh must not fail the request.
func TestValidTokenSurvivesTransientFailure(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	core.SetSleep(f.r, (&sleeps{}).sleep)
	session, saved := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) { w.WriteHeader(502) })
	f.clock.Advance(59*time.Minute + 30*time.Second)
	tok, err := f.token(session)
	if err != nil || tok.AccessToken != saved.AccessToken {
		t.Fatalf("within leeway, after a 502: %v, %v", tok, err)
	}
	f.clock.Advance(time.Minute) // now expired
	if _, err := f.token(session); !errors.Is(err, core.ErrTransient) {
		t.Fatalf("expired, after a 502: %v", err)
	}
	f.srv.SetTokenHook(nil)
	f.clock.Advance(time.Minute) // the grant's backoff is over
	if _, err := f.token(session); err != nil {
		t.Fatal(err)
	}
}

// TestTokenEndpointRedirectNotFollowed: a redirect from the token endpoint
// would re-post the refresh token and the client secret to wherever it
// points (307/308 keep the body). It is never followed.
func TestTokenEndpointRedirectNotFollowed(t *testing.T) {
	var got atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
	}))
	defer elsewhere.Close()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		f := newFixture(t, smarttest.Options{})
		session, _ := f.login()
		f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			http.Redirect(w, r, elsewhere.URL+"/token", code)
		})
		f.clock.Advance(time.Hour)
		_, err := f.token(session)
		if !errors.Is(err, core.ErrMisconfigured) || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("%d: err = %v, want a misconfiguration naming the redirect", code, err)
		}
		if _, err := f.r.Info(f.request(session)); err != nil {
			t.Errorf("%d: token not kept: %v", code, err)
		}
	}
	if got.Load() != 0 {
		t.Errorf("the redirect target received %d requests", got.Load())
	}
}

func TestRefresherRedactsItself(t *testing.T) {
	f := newFixture(t, smarttest.Options{ClientSecret: "TOPSECRET-123"}, func(c *core.Config) {
		c.EncryptionKeys = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	})
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("ready", "refresher", f.r)
	for _, out := range []string{fmt.Sprint(f.r), fmt.Sprintf("%+v", f.r), fmt.Sprintf("%#v", f.r), f.r.String(), logs.String()} {
		if strings.Contains(out, "TOPSECRET") || strings.Contains(out, "0123456789abcdef") || strings.Contains(out, "[48 49") {
			t.Errorf("leaks a secret: %s", out)
		}
		if !strings.Contains(out, f.srv.TokenURL) && !strings.Contains(out, "token_url") {
			t.Errorf("hides the token URL: %s", out)
		}
	}
}

// TestUnusableRotatedAnswer: a 2xx answer that carries a new refresh token
// but cannot be used (here: a DPoP-bound token) has spent the old refresh
// token at the server. Keeping it for a retry would be a reuse; the session
// goes the re-authorization way instead, and the old token is never sent
// again.
func TestUnusableRotatedAnswer(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		io.WriteString(w, strings.Replace(rec.Body.String(), `"token_type":"Bearer"`, `"token_type":"DPoP"`, 1))
	})
	f.clock.Advance(time.Hour)
	_, err := f.token(session)
	var ure *core.UnusableRotationError
	if !errors.Is(err, core.ErrReauthRequired) || errors.Is(err, core.ErrTransient) || !errors.As(err, &ure) {
		t.Fatalf("err = %v, want an UnusableRotationError (re-auth only)", err)
	}
	if !strings.Contains(err.Error(), "DPoP") {
		t.Errorf("error does not say what was unusable: %v", err)
	}
	if _, err := f.token(session); !errors.Is(err, core.ErrNoToken) {
		t.Fatalf("the spent token was kept: %v", err)
	}
	if c := f.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	f.checkNoReuse()
}

// TestBackgroundStoreUsesLatestSession: a refresh that completes after the
// request that started it has gone stores the token into the session as it
// is in the store then: it neither writes back that request's older copy of
// the other keys nor brings back a session destroyed meanwhile.
func TestBackgroundStoreUsesLatestSession(t *testing.T) {
	for _, destroy := range []bool{false, true} {
		stored := make(chan struct{}, 1)
		f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
			c.OnRefresh = func(core.RefreshInfo) { stored <- struct{}{} } // after the store
		})
		session, _ := f.login()
		release, entered := make(chan struct{}), make(chan struct{}, 1)
		f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			entered <- struct{}{}
			<-release
			next.ServeHTTP(w, r)
		})
		f.clock.Advance(time.Hour)
		leader, cancel := context.WithCancel(f.request(session))
		done := make(chan error, 1)
		go func() { _, err := f.r.Token(leader); done <- err }()
		<-entered
		cancel() // the request that started the refresh goes away
		<-done

		other := f.request(session) // meanwhile another request changes the session
		if destroy {
			if err := f.sm.Destroy(other); err != nil {
				t.Fatal(err)
			}
		} else {
			f.sm.Put(other, "csrf", "new")
			f.end(other)
		}
		close(release)
		f.srv.SetTokenHook(nil)

		<-stored
		ctx := f.request(session)
		info, err := f.r.Info(ctx)
		if destroy {
			if f.sm.Token(ctx) != "" || err == nil {
				t.Errorf("a destroyed session came back: %+v, %v", info, err)
			}
			continue
		}
		if err != nil || info.Refreshes != 1 {
			t.Errorf("refreshed token not stored: %+v, %v", info, err)
		}
		if got := f.sm.GetString(ctx, "csrf"); got != "new" {
			t.Errorf("csrf = %q: the refresh wrote back an older copy of the session", got)
		}
	}
}
