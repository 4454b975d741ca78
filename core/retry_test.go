package core_test

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestLostAnswer: the server rotates the refresh token but its answer is
// lost. The refresh is not retried (ErrOutcomeUnknown, one token request),
// the stored token is kept, and the next request tries it again; the strict
// server sees a reuse and answers invalid_grant, which ends in a clean
// ErrReauthRequired.
//
// The refresher's own prompt resend is off here (it is TestLostAnswerResent's).
func TestLostAnswer(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.ResendAfter = -1 })
	session, _ := f.login()
	f.srv.SetTokenHook(lose(reset))
	f.clock.Advance(time.Hour)

	_, err := f.token(session)
	if !errors.Is(err, core.ErrOutcomeUnknown) || !errors.Is(err, core.ErrTransient) {
		t.Fatalf("lost answer: %v, want ErrOutcomeUnknown", err)
	}
	if n := f.srv.RefreshCalls(); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
	if _, err := f.r.Info(f.request(session)); err != nil {
		t.Fatalf("stored token not kept: %v", err)
	}

	f.srv.SetTokenHook(nil)
	f.clock.Advance(time.Second) // the grant's backoff after its first failure
	_, err = f.token(session)
	if !errors.Is(err, core.ErrReauthRequired) {
		t.Fatalf("next request: %v, want ErrReauthRequired", err)
	}
	if f.srv.RefreshCalls() != 2 || f.srv.Reuses() != 1 {
		t.Errorf("token requests = %d, reuses = %d, want 2 and 1", f.srv.RefreshCalls(), f.srv.Reuses())
	}
	if _, err := f.token(session); !errors.Is(err, core.ErrNoToken) {
		t.Errorf("after re-authorization was required: %v, want ErrNoToken", err)
	}
}

// TestRetryBackoff: waits double from BaseDelay, with jitter between half
// and all of each, capped at MaxDelay.
func TestRetryBackoff(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.Retry = core.RetryPolicy{MaxAttempts: 6, BaseDelay: 100 * time.Millisecond, MaxDelay: 500 * time.Millisecond}
	})
	var waits sleeps
	core.SetSleep(f.r, waits.sleep)
	session, _ := f.login()
	f.srv.SetTokenHook(status(429, ""))
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); !errors.Is(err, core.ErrTransient) || errors.Is(err, core.ErrOutcomeUnknown) {
		t.Fatalf("err = %v", err)
	}
	if n := f.srv.RefreshCalls(); n != 6 {
		t.Errorf("token requests = %d, want 6", n)
	}
	ws := waits.list()
	caps := []time.Duration{100, 200, 400, 500, 500}
	if len(ws) != len(caps) {
		t.Fatalf("waits = %v, want %d", ws, len(caps))
	}
	for i, w := range ws {
		hi := caps[i] * time.Millisecond
		if w < hi/2 || w > hi {
			t.Errorf("wait %d = %v, want between %v and %v", i, w, hi/2, hi)
		}
	}
}

func TestRetryDisabled(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Retry.MaxAttempts = 1 })
	session, _ := f.login()
	f.srv.SetTokenHook(status(429, ""))
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); !errors.Is(err, core.ErrTransient) {
		t.Fatalf("err = %v", err)
	}
	if n := f.srv.RefreshCalls(); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}

// TestRetryNeverWaitsPastDeadline: a Retry-After that would end after
// RefreshTimeout ends the retries at once.
func TestRetryNeverWaitsPastDeadline(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.RefreshTimeout = 500 * time.Millisecond })
	var waits sleeps
	core.SetSleep(f.r, waits.sleep)
	session, _ := f.login()
	f.srv.SetTokenHook(status(503, "1"))
	f.clock.Advance(time.Hour)
	_, err := f.token(session)
	if d, ok := core.RetryAfter(err); !ok || d != time.Second {
		t.Fatalf("err = %v, want one with Retry-After 1s", err)
	}
	if n, ws := f.srv.RefreshCalls(), waits.list(); n != 1 || len(ws) != 0 {
		t.Errorf("token requests = %d, waits = %v, want 1 and none", n, ws)
	}
}

// TestRetryWaitsForReal: without the test hook a retry really waits, and a
// caller that gives up stops waiting at once.
func TestRetryWaitsForReal(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.Retry = core.RetryPolicy{BaseDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	})
	session, _ := f.login()
	f.srv.SetTokenHook(failFirst(1, status(429, "")))
	f.clock.Advance(time.Hour)
	start := time.Now()
	if _, err := f.token(session); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Errorf("retried after %v, want at least 10ms", d)
	}
	if n := f.srv.RefreshCalls(); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}
	f.checkNoReuse()
}

// TestRetryJudgesUntracedTransports: a RoundTripper that reports no
// httptrace events is judged by its error alone: a dial error is retried,
// anything else is an unknown outcome.
func TestRetryJudgesUntracedTransports(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		calls   int32
		unknown bool
	}{
		{"dial error", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, 3, false},
		{"DNS error", &net.DNSError{Err: "no such host", Name: "ehr.example", IsNotFound: true}, 3, false},
		{"read error", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, 1, true},
		{"EOF", io.ErrUnexpectedEOF, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
				c.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					calls.Add(1)
					return nil, tt.err
				})}
				c.ResendAfter = -1 // the retry policy alone
			})
			core.SetSleep(f.r, (&sleeps{}).sleep)
			session, _ := f.login()
			f.clock.Advance(time.Hour)
			_, err := f.token(session)
			if !errors.Is(err, core.ErrTransient) || errors.Is(err, core.ErrOutcomeUnknown) != tt.unknown {
				t.Errorf("err = %v, want ErrTransient with ErrOutcomeUnknown %v", err, tt.unknown)
			}
			if n := calls.Load(); n != tt.calls {
				t.Errorf("attempts = %d, want %d", n, tt.calls)
			}
		})
	}
}

// TestRetryTLSHandshakeFailure: a TLS handshake that fails (here, an
// untrusted certificate) sent nothing and is retried.
func TestRetryTLSHandshakeFailure(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(500)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()
	sm := scs.New()
	r, err := core.New(core.Config{TokenURL: ts.URL + "/token", ClientID: "c", Sessions: sm,
		HTTPClient: &http.Client{Transport: &http.Transport{}}})
	if err != nil {
		t.Fatal(err)
	}
	var waits sleeps
	core.SetSleep(r, waits.sleep)
	ctx, _ := sm.Load(t.Context(), "")
	if err := r.Save(ctx, &core.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	_, err = r.Token(ctx)
	if !errors.Is(err, core.ErrTransient) || errors.Is(err, core.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrTransient, outcome known", err)
	}
	if n := len(waits.list()); n != 2 || requests.Load() != 0 {
		t.Errorf("%d retries, %d requests served, want 2 and 0", n, requests.Load())
	}
}

func TestRetryPolicyValidation(t *testing.T) {
	sm := scs.New()
	for field, p := range map[string]core.RetryPolicy{
		"Retry.MaxAttempts": {MaxAttempts: -1},
		"Retry.BaseDelay":   {BaseDelay: -1},
		"Retry.MaxDelay":    {MaxDelay: -1},
	} {
		_, err := core.New(core.Config{TokenURL: "https://ehr.example/token", ClientID: "c", Sessions: sm, Retry: p})
		var ce *core.ConfigError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%+v: %v, want a ConfigError for %s", p, err, field)
		}
	}
}
