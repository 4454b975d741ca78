package core_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// staleApp is an app served over real HTTP by a real scs LoadAndSave, with
// the routes the stale-copy tests need. Its slow route loads the session,
// optionally sends its headers at once (a streamed answer: LoadAndSave
// commits then), signals that it started, waits for the test, then asks
// for the token; the test does other requests in between.
type staleApp struct {
	f       *fixture
	ts      *httptest.Server
	started chan struct{}
	release chan struct{}
	slowErr chan error
	// afterToken, if set, runs in the slow request after its Token call.
	afterToken func(ctx context.Context)
}

func newStaleApp(t *testing.T, idle time.Duration) *staleApp {
	t.Helper()
	f := newFixture(t, smarttest.Options{})
	f.sm.IdleTimeout = idle
	a := &staleApp{f: f, started: make(chan struct{}), release: make(chan struct{}), slowErr: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := f.r.Save(r.Context(), f.srv.Grant()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		f.sm.Put(r.Context(), "user", "alice")
		f.sm.Put(r.Context(), "counter", 1)
	})
	mux.HandleFunc("POST /incr", func(w http.ResponseWriter, r *http.Request) {
		f.sm.Put(r.Context(), "counter", f.sm.GetInt(r.Context(), "counter")+1)
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		if _, err := f.r.Token(r.Context()); err != nil {
			http.Error(w, err.Error(), core.StatusCode(err))
		}
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := f.r.Logout(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		f.sm.Destroy(r.Context())
	})
	mux.HandleFunc("POST /destroy", func(w http.ResponseWriter, r *http.Request) {
		f.sm.Destroy(r.Context())
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("stream") != "" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		close(a.started)
		<-a.release
		_, err := f.r.Token(r.Context())
		if a.afterToken != nil {
			a.afterToken(r.Context())
		}
		a.slowErr <- err
	})
	a.ts = httptest.NewServer(f.sm.LoadAndSave(mux))
	t.Cleanup(a.ts.Close)
	return a
}

// do sends one request with the session cookie and returns the cookie of
// the answer, if it set one.
func (a *staleApp) do(method, path, session string) (string, int) {
	a.f.t.Helper()
	req, _ := http.NewRequest(method, a.ts.URL+path, nil)
	if session != "" {
		req.AddCookie(&http.Cookie{Name: a.f.sm.Cookie.Name, Value: session})
	}
	resp, err := a.ts.Client().Do(req)
	if err != nil {
		a.f.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == a.f.sm.Cookie.Name && c.MaxAge >= 0 {
			return c.Value, resp.StatusCode
		}
	}
	return session, resp.StatusCode
}

// slow starts the slow request and returns once it has loaded its copy of
// the session; finish lets it go on and waits for its end.
func (a *staleApp) slow(session string, stream bool) (finish func() error) {
	path := "/slow"
	if stream {
		path += "?stream=1"
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", a.ts.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: a.f.sm.Cookie.Name, Value: session})
		resp, err := a.ts.Client().Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-a.started
	return func() error {
		close(a.release)
		err := <-a.slowErr
		<-done
		return err
	}
}

// stored returns the session as the store holds it now, read with a fresh
// load: whether it exists, its user and counter, and its token.
func (a *staleApp) stored(session string) (exists bool, user string, counter int, tok *core.Token) {
	ctx, err := a.f.sm.Load(context.Background(), session)
	if err != nil {
		a.f.t.Fatal(err)
	}
	if a.f.sm.Token(ctx) == "" {
		return false, "", 0, nil
	}
	// Info reads the stored record without refreshing it or consulting the
	// grant's history.
	info, err := a.f.r.Info(ctx)
	if err == nil {
		tok = &core.Token{Expiry: info.Expiry}
	}
	return true, a.f.sm.GetString(ctx, "user"), a.f.sm.GetInt(ctx, "counter"), tok
}

// staleVariants are the scs settings and slow requests of the stale-copy
// tests. With IdleTimeout set, scs itself commits every copy it loaded at
// the end of the request, so there the slow request streams its answer:
// LoadAndSave committed before the other requests ran, and only the
// library could write the copy again.
var staleVariants = []struct {
	name   string
	idle   time.Duration
	stream bool
}{
	{"IdleTimeout=0", 0, false},
	{"IdleTimeout=0/streamed", 0, true},
	{"IdleTimeout=30m/streamed", 30 * time.Minute, true},
}

// TestStaleCopyDoesNotResurrectLogout: a slow request loads the session,
// the user logs out (Logout, then Destroy) meanwhile, and the slow request
// then asks for the token. The old cookie must find nothing afterwards: no
// session, no user id, no token.
func TestStaleCopyDoesNotResurrectLogout(t *testing.T) {
	for _, v := range staleVariants {
		for _, logout := range []string{"/logout", "/destroy"} {
			t.Run(v.name+logout, func(t *testing.T) {
				a := newStaleApp(t, v.idle)
				session, _ := a.do("POST", "/login", "")
				if logout == "/destroy" {
					// Destroy without Logout, with a token due: the slow
					// request refreshes it.
					a.f.clock.Advance(time.Hour)
				}
				finish := a.slow(session, v.stream)
				a.do("POST", logout, session)
				if err := finish(); err == nil && logout == "/logout" {
					t.Error("the slow request got a token after Logout")
				}
				exists, user, _, tok := a.stored(session)
				if exists {
					t.Fatalf("the destroyed session came back under the old cookie: user %q, token %v", user, tok != nil)
				}
				if _, code := a.do("GET", "/token", session); code != http.StatusUnauthorized {
					t.Errorf("old cookie: status %d, want 401", code)
				}
				a.f.checkNoReuse()
			})
		}
	}
}

// TestRotationKeepsOtherWrites: while a slow request holds its copy of the
// session, other requests increment a counter (1 → 3). Whether another
// request or the slow one rotates the token, the slow request's Token must
// not write its copy back: the counter stays 3, and the store holds the
// rotated token.
func TestRotationKeepsOtherWrites(t *testing.T) {
	for _, v := range staleVariants {
		for _, who := range []string{"other", "slow"} {
			t.Run(v.name+"/rotated-by-"+who, func(t *testing.T) {
				a := newStaleApp(t, v.idle)
				session, _ := a.do("POST", "/login", "")
				a.f.clock.Advance(time.Hour)
				finish := a.slow(session, v.stream)
				if who == "other" {
					if _, code := a.do("GET", "/token", session); code != 200 {
						t.Fatalf("refresh: status %d", code)
					}
				}
				a.do("POST", "/incr", session)
				a.do("POST", "/incr", session)
				if err := finish(); err != nil {
					t.Fatal(err)
				}
				checkStored(t, a, session, 3)
			})
		}
	}
}

// TestTokenThenWriteKeepsRotatedToken: a request refreshes the token while
// its copy is unmodified, then the app writes the session (a flash
// message), so LoadAndSave commits the copy with the token it loaded. The
// store must end up with the rotated token all the same.
func TestTokenThenWriteKeepsRotatedToken(t *testing.T) {
	a := newStaleApp(t, 0)
	session, _ := a.do("POST", "/login", "")
	a.f.clock.Advance(time.Hour)
	a.afterToken = func(ctx context.Context) { a.f.sm.Put(ctx, "flash", "saved") }
	finish := a.slow(session, false)
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	// The rotated token reaches the store right after the request.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, _, tok := a.stored(session)
		if tok != nil && tok.Expiry.After(a.f.clock.Now()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	checkStored(t, a, session, 1)
}

func checkStored(t *testing.T, a *staleApp, session string, counter int) {
	t.Helper()
	exists, user, got, tok := a.stored(session)
	if !exists || user != "alice" {
		t.Fatalf("session lost: exists %v, user %q", exists, user)
	}
	if got != counter {
		t.Errorf("counter = %d, want %d: a stale copy of the session was written back", got, counter)
	}
	if tok == nil || !tok.Expiry.After(a.f.clock.Now()) {
		t.Errorf("the store does not hold the rotated token")
	}
	if c := a.f.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	a.f.checkNoReuse()
}

// TestUnmodifiedCopyRefreshesOnce: a request whose copy of the session is
// not modified (IdleTimeout 0) keeps the token it loaded after a refresh;
// its later Token calls must still get the new token without another
// token call, whether the server rotates refresh tokens or not.
func TestUnmodifiedCopyRefreshesOnce(t *testing.T) {
	for _, noRotation := range []bool{false, true} {
		t.Run("NoRotation="+strconv.FormatBool(noRotation), func(t *testing.T) {
			f := newFixture(t, smarttest.Options{NoRotation: noRotation})
			f.sm.IdleTimeout = 0
			session, saved := f.login()
			f.clock.Advance(time.Hour)
			ctx := f.request(session)
			var first *core.Token
			for i := range 5 {
				tok, err := f.r.Token(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = tok
				}
				if tok.AccessToken == saved.AccessToken || tok.AccessToken != first.AccessToken {
					t.Fatalf("call %d: got the old token or another new one", i+1)
				}
			}
			if f.sm.Status(ctx) != scs.Unmodified {
				t.Error("the Refresher modified the request's copy of the session")
			}
			if c := f.srv.RefreshCalls(); c != 1 {
				t.Errorf("refresh calls = %d, want 1", c)
			}
			f.checkNoReuse()
		})
	}
}

// TestStaleCopiesStorm: 200 concurrent requests over HTTP (IdleTimeout
// 0) all find the token due while another request writes the session; one
// token call, and no copy loaded before that write is written back.
func TestStaleCopiesStorm(t *testing.T) {
	a := newStaleApp(t, 0)
	session, _ := a.do("POST", "/login", "")
	a.f.clock.Advance(time.Hour)
	const n = 200
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			if i == n/2 {
				a.do("POST", "/incr", session)
			}
			_, codes[i] = a.do("GET", "/token", session)
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("request %d: status %d", i, c)
		}
	}
	checkStored(t, a, session, 2)
}
