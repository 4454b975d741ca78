package core_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// panicky is an Observer whose method named in panicIn panics, once.
type panicky struct {
	panicIn string
	done    atomic.Bool
}

func (o *panicky) maybe(m string) {
	if o.panicIn == m && o.done.CompareAndSwap(false, true) {
		panic("observer " + m + " broke")
	}
}

func (o *panicky) StartRefresh(ctx context.Context) (context.Context, func()) {
	o.maybe("StartRefresh")
	return ctx, func() { o.maybe("end") }
}
func (o *panicky) Refreshed(context.Context, core.RefreshInfo)          { o.maybe("Refreshed") }
func (o *panicky) RefreshFailed(context.Context, core.RefreshErrorInfo) { o.maybe("RefreshFailed") }
func (o *panicky) Reauth(context.Context, core.ReauthInfo)              { o.maybe("Reauth") }
func (o *panicky) Resend(context.Context)                               { o.maybe("Resend") }

// sentRefreshTokens counts, per refresh token, how often the token
// endpoint was sent it.
type sentRefreshTokens struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *sentRefreshTokens) hook(invalid *atomic.Bool) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		r.ParseForm()
		s.mu.Lock()
		if s.n == nil {
			s.n = map[string]int{}
		}
		s.n[r.PostForm.Get("refresh_token")]++
		s.mu.Unlock()
		if invalid.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		next.ServeHTTP(w, r)
	}
}

func (s *sentRefreshTokens) most() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, n := range s.n {
		m = max(m, n)
	}
	return m
}

// TestAttackObserverPanic: an Observer (app code) that panics in any of
// its methods panics in the request that called Token, as a handler's
// own panic would (net/http recovers it), not in a goroutine of its own
// that no one can recover and that ends the process; and it breaks no
// promise: no refresh token is sent twice, and the grant is not wedged
// (the next request refreshes, or learns it must authorize again).
func TestAttackObserverPanic(t *testing.T) {
	for _, tc := range []struct {
		method  string
		invalid bool // the token endpoint answers invalid_grant
	}{
		{"StartRefresh", false},
		{"Refreshed", false},
		{"end", false},
		{"RefreshFailed", true},
		{"Reauth", true},
	} {
		t.Run(tc.method, func(t *testing.T) {
			obs := &panicky{panicIn: tc.method}
			f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Observer = obs })
			var sent sentRefreshTokens
			var invalid atomic.Bool
			invalid.Store(tc.invalid)
			f.srv.SetTokenHook(sent.hook(&invalid))
			session, _ := f.login()
			f.clock.Advance(time.Hour)
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				f.token(session)
			}()
			if recovered == nil {
				t.Fatalf("the Observer's panic in %s did not reach the caller of Token", tc.method)
			}
			if !obs.done.Load() {
				t.Fatal("the Observer did not panic")
			}
			for range 3 {
				tok, err := f.token(session)
				switch {
				case tc.invalid && !errors.Is(err, core.ErrReauthRequired):
					t.Fatalf("after the panic: %v, want ErrReauthRequired", err)
				case !tc.invalid && (err != nil || tok.AccessToken == ""):
					t.Fatalf("after the panic: %v, want a token", err)
				}
			}
			if n := sent.most(); n != 1 {
				t.Errorf("a refresh token was sent %d times", n)
			}
		})
	}
}
