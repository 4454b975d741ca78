package core_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// faultNet is the network between the refresher and the mock server: it
// counts dials and, while refuse is positive, dials a closed loopback port
// instead (a real "connection refused"), counting refuse down. Keep-alives
// are off, so that every token request dials.
type faultNet struct {
	closed string // address of a closed port
	refuse atomic.Int32
	dials  atomic.Int32
}

func newFaultNet(t *testing.T) *faultNet {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &faultNet{closed: l.Addr().String()}
	l.Close()
	return n
}

func (n *faultNet) client() *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			n.dials.Add(1)
			if n.refuse.Add(-1) >= 0 {
				addr = n.closed
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// sleeps records the waits between retries without sleeping.
type sleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) list() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

type hookFunc = func(w http.ResponseWriter, r *http.Request, next http.Handler)

// Fault hooks for the token endpoint.
func status(code int, retryAfter string) hookFunc {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
	}
}

func body(ctype, text string) hookFunc {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", ctype)
		io.WriteString(w, text)
	}
}

// lose lets the server process the request (rotating the refresh token),
// then loses its answer with after.
func lose(after hookFunc) hookFunc {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(httptest.NewRecorder(), r)
		after(w, r, next)
	}
}

func reset(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

// hang answers only when the client gives up (or after a minute, so that a
// refresher that never gives up fails the test instead of hanging it).
func hang(w http.ResponseWriter, r *http.Request, next http.Handler) {
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
}

func slowDrip(w http.ResponseWriter, r *http.Request, next http.Handler) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	io.WriteString(w, `{"access_token":"`)
	w.(http.Flusher).Flush()
	for range 1200 { // a minute
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := io.WriteString(w, "a"); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

func huge(w http.ResponseWriter, r *http.Request, next http.Handler) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"token_type":"Bearer","access_token":"`)
	chunk := strings.Repeat("a", 64<<10)
	for range 160 { // 10 MB
		if _, err := io.WriteString(w, chunk); err != nil {
			return
		}
	}
	io.WriteString(w, `"}`)
}

// failFirst applies fault to the first n requests and lets the rest
// through.
func failFirst(n int32, fault hookFunc) hookFunc {
	var calls atomic.Int32
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if calls.Add(1) <= n {
			fault(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	}
}

// after is what the first request after a fault is removed sees.
type after int

const (
	afterOK     after = iota // refreshes normally
	afterReauth              // ErrReauthRequired: the strict server saw a reuse, or the grant ended
)

// TestFaults injects each fault at the token endpoint while 50 requests of
// one session need a refresh, and checks what the app sees, how many token
// requests were made (all 50 share one refresh), what the session keeps,
// and what the next request sees once the fault is gone.
//
// The refresh is held until all 50 requests joined it (flightGate), so that
// none comes late and starts a second one, however busy the machine. The
// RefreshTimeout is long where the fault is not a timeout, so that a slow
// first attempt never leaves too little time for a Retry-After wait; the
// timeout faults last until the refresher gives up.
func TestFaults(t *testing.T) {
	const concurrent = 50
	tests := []struct {
		name    string
		hook    hookFunc
		refused int32         // connection refused for this many dials
		timeout time.Duration // RefreshTimeout; 30 s when zero
		class   error         // nil: the refresh succeeds
		unknown bool          // the error matches ErrOutcomeUnknown
		status  int           // core.StatusCode of the error
		retry   time.Duration // core.RetryAfter of the error
		calls   int           // token requests (dials when refused)
		kept    bool          // the session still holds the old token
		after   after
		reuses  int // refresh token reuses the strict server saw, in all
	}{
		{name: "500", hook: status(500, ""),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "502 before the server", hook: status(502, ""),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "502 after the server rotated", hook: lose(status(502, "")),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true,
			after: afterReauth, reuses: 1},
		{name: "504", hook: status(504, ""),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "bare 503 (maybe a proxy that lost the answer)", hook: status(503, ""),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "503 with Retry-After, persisting", hook: status(503, "1"),
			class: core.ErrTransient, status: 503, retry: time.Second, calls: 3, kept: true},
		{name: "503 with Retry-After, then success", hook: failFirst(1, status(503, "1")),
			calls: 2},
		{name: "429, persisting", hook: status(429, ""),
			class: core.ErrTransient, status: 503, calls: 3, kept: true},
		{name: "429, then success", hook: failFirst(2, status(429, "")),
			calls: 3},
		{name: "503 asking for a long wait", hook: status(503, "30"),
			class: core.ErrTransient, status: 503, retry: 30 * time.Second, calls: 1, kept: true},
		{name: "connection refused, persisting", refused: 1 << 20,
			class: core.ErrTransient, status: 503, calls: 3, kept: true},
		{name: "connection refused, then success", refused: 1,
			calls: 2},
		{name: "reset before the server acted", hook: reset,
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "reset after the request was read", hook: lose(reset),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true,
			after: afterReauth, reuses: 1},
		{name: "timeout", hook: hang, timeout: 300 * time.Millisecond,
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "slow drip", hook: slowDrip, timeout: 300 * time.Millisecond,
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "10 MB answer", hook: huge,
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "truncated JSON", hook: body("application/json", `{"access_token":"abc","token_ty`),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "wrong types", hook: body("application/json", `{"access_token":42,"token_type":"Bearer"}`),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "HTML page with 200", hook: body("text/html", "<html><body>Down for maintenance</body></html>"),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "negative expires_in: accepted, expiry unknown", hook: body("application/json", `{"access_token":"new","token_type":"Bearer","expires_in":-5}`),
			calls: 1},
		{name: "absurd expires_in: accepted, expiry unknown", hook: body("application/json", `{"access_token":"new","token_type":"Bearer","expires_in":1e300}`),
			calls: 1},
		{name: "empty access_token", hook: body("application/json", `{"access_token":"","token_type":"Bearer","expires_in":3600}`),
			class: core.ErrTransient, unknown: true, status: 503, calls: 1, kept: true},
		{name: "invalid_grant", hook: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_grant"}`)
		}, class: core.ErrReauthRequired, status: 401, calls: 1, after: afterReauth},
		{name: "invalid_client", hook: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"invalid_client"}`)
		}, class: core.ErrMisconfigured, status: 500, calls: 1, kept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network := newFaultNet(t)
			timeout := cmpOr(tt.timeout, 30*time.Second)
			f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
				c.HTTPClient = network.client()
				c.RefreshTimeout = timeout
				c.ResendAfter = -1 // the resend of a lost answer: TestLostAnswerResent
			})
			var waits sleeps
			core.SetSleep(f.r, waits.sleep)
			gate := newFlightGate(t, f.r)
			session, saved := f.login()
			f.clock.Advance(time.Hour)
			f.srv.SetTokenHook(tt.hook)
			network.refuse.Store(tt.refused)
			network.dials.Store(0)

			gate.expect(concurrent)
			start := time.Now()
			errs, toks := make([]error, concurrent), make([]*core.Token, concurrent)
			var wg sync.WaitGroup
			ready := make(chan struct{})
			for i := range concurrent {
				wg.Go(func() {
					ctx := f.request(session)
					<-ready
					toks[i], errs[i] = f.r.Token(ctx)
					f.end(ctx)
				})
			}
			close(ready)
			wg.Wait()
			elapsed := time.Since(start)
			gate.expect(0)

			for i, err := range errs {
				if tt.class == nil {
					if err != nil || toks[i].AccessToken == saved.AccessToken || toks[i].AccessToken != toks[0].AccessToken {
						t.Fatalf("request %d: %v, want the one new token", i, err)
					}
					continue
				}
				if !errors.Is(err, tt.class) {
					t.Fatalf("request %d: %v, want %v", i, err, tt.class)
				}
				if errors.Is(err, core.ErrOutcomeUnknown) != tt.unknown {
					t.Errorf("request %d: %v: ErrOutcomeUnknown = %v, want %v", i, err, !tt.unknown, tt.unknown)
				}
				if got := core.StatusCode(err); got != tt.status {
					t.Errorf("request %d: StatusCode = %d, want %d", i, got, tt.status)
				}
				// A transient failure makes the grant back off: without
				// the server's Retry-After, the backoff's (at most 1 s
				// after a first failure) is the hint.
				got, ok := core.RetryAfter(err)
				switch {
				case tt.retry > 0 && got != tt.retry:
					t.Errorf("request %d: RetryAfter = %v, want %v", i, got, tt.retry)
				case tt.retry == 0 && tt.class == core.ErrTransient && (!ok || got > time.Second):
					t.Errorf("request %d: RetryAfter = %v, want the backoff's, at most 1s", i, got)
				case tt.class != core.ErrTransient && ok:
					t.Errorf("request %d: RetryAfter = %v, want none", i, got)
				}
			}
			calls := f.srv.RefreshCalls()
			if tt.refused > 0 {
				calls = int(network.dials.Load())
			}
			if calls != tt.calls {
				t.Errorf("token requests = %d, want %d", calls, tt.calls)
			}
			// The slack covers starting 50 goroutines on a busy machine;
			// the timeout faults would last a minute.
			if elapsed > timeout+10*time.Second {
				t.Errorf("the requests took %v; RefreshTimeout is %v", elapsed, timeout)
			}
			if ws := waits.list(); len(ws) != max(tt.calls-1, 0) {
				t.Errorf("waits between attempts: %v, want %d", ws, max(tt.calls-1, 0))
			} else if tt.retry > 0 && tt.calls > 1 && ws[0] < tt.retry {
				t.Errorf("waited %v, less than Retry-After %v", ws[0], tt.retry)
			}

			info, err := f.r.Info(f.request(session))
			switch {
			case tt.class == nil:
				if err != nil || info.Refreshes != 1 {
					t.Errorf("after the refresh: %+v, %v", info, err)
				}
			case tt.kept:
				if err != nil || info.Refreshes != 0 || !info.HasRefreshToken || !info.Expiry.Equal(saved.Expiry) {
					t.Errorf("stored token changed: %+v, %v", info, err)
				}
			default:
				if !errors.Is(err, core.ErrNoToken) {
					t.Errorf("token not removed: %+v, %v", info, err)
				}
			}

			// Remove the fault: the next request refreshes, or ends
			// cleanly in re-authorization.
			f.srv.SetTokenHook(nil)
			network.refuse.Store(0)
			f.clock.Advance(time.Minute) // the grant's backoff, if any, is over
			tok, err := f.token(session)
			switch tt.after {
			case afterOK:
				if err != nil || tok.AccessToken == saved.AccessToken {
					t.Errorf("after the fault: %v", err)
				}
			case afterReauth:
				if !errors.Is(err, core.ErrReauthRequired) {
					t.Errorf("after the fault: %v, want ErrReauthRequired", err)
				}
				if _, err := f.r.Info(f.request(session)); !errors.Is(err, core.ErrNoToken) {
					t.Errorf("token not removed after re-authorization was required: %v", err)
				}
			}
			if n := f.srv.Reuses(); n != tt.reuses {
				t.Errorf("the server saw %d refresh token reuses, want %d", n, tt.reuses)
			}
		})
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
