package core_test

import (
	"errors"
	"io"
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

// TestStreamedBody401Refreshes: a request whose body cannot be replayed
// (an io.Pipe upload, an io.NopCloser) gets the server's 401 as it came,
// but the token is refreshed all the same, once for concurrent callers, so
// that the next request of the session goes through.
func TestStreamedBody401Refreshes(t *testing.T) {
	bodies := map[string]func() io.Reader{
		"io.Pipe": func() io.Reader {
			pr, pw := io.Pipe()
			go func() {
				io.WriteString(pw, `{"resourceType":"Observation","status":"final"}`)
				pw.Close()
			}()
			return pr
		},
		"io.NopCloser": func() io.Reader {
			return io.NopCloser(strings.NewReader(`{"resourceType":"Observation","status":"final"}`))
		},
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, smarttest.Options{})
			session, _ := f.login()
			f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				time.Sleep(20 * time.Millisecond)
				next.ServeHTTP(w, r)
			})
			f.srv.ExpireAccessTokens()
			const n = 100
			var wg sync.WaitGroup
			var unexpected atomic.Int32
			var loaded sync.WaitGroup
			loaded.Add(n)
			for range n {
				wg.Go(func() {
					ctx := f.request(session) // every copy holds the rejected token
					defer f.end(ctx)
					loaded.Done()
					loaded.Wait()
					req, _ := http.NewRequest("POST", f.srv.FHIRBaseURL+"/Observation", body())
					req.Header.Set("Content-Type", "application/fhir+json")
					resp, err := f.r.Client(ctx).Do(req)
					if err != nil || resp.StatusCode != http.StatusUnauthorized {
						if unexpected.Add(1) == 1 {
							t.Logf("first unexpected answer: %v %v", resp, err)
						}
						return
					}
					resp.Body.Close()
				})
			}
			wg.Wait()
			if unexpected.Load() != 0 {
				t.Errorf("%d streamed requests did not get their 401 back", unexpected.Load())
			}
			if c := f.srv.RefreshCalls(); c != 1 {
				t.Fatalf("refresh calls = %d after %d streamed 401s, want 1", c, n)
			}
			req, _ := http.NewRequest("POST", f.srv.FHIRBaseURL+"/Observation", body())
			req.Header.Set("Content-Type", "application/fhir+json")
			resp, err := f.r.Client(f.request(session)).Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("next streamed request: %v %v, want 201", resp, err)
			}
			resp.Body.Close()
			f.checkNoReuse()
		})
	}
}

// TestAlways401OneRefresh: a FHIR server that rejects every token gets one
// refresh per cool-down, not one per request; the callers after it get
// ErrTokenRejected.
func TestAlways401OneRefresh(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	var fhirCalls atomic.Int32
	always401 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fhirCalls.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer always401.Close()

	get := func() (*http.Response, error) {
		ctx := f.request(session)
		defer f.end(ctx)
		return f.r.Client(ctx).Get(always401.URL + "/Patient/1")
	}
	const n = 10
	var rejected int
	for i := range n {
		resp, err := get()
		switch {
		case i == 0:
			// The first request refreshes and replays; the replay's 401
			// comes back as it was.
			if err != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("request 1: %v %v, want the 401", resp, err)
			}
			resp.Body.Close()
		case errors.Is(err, core.ErrTokenRejected):
			rejected++
			var re *core.TokenRejectedError
			if !errors.As(err, &re) || re.Code != "invalid_token" || re.CoolDown != core.TokenRejectedCoolDown {
				t.Errorf("request %d: %#v, want a *TokenRejectedError with the server's error code", i+1, err)
			}
			if !strings.Contains(err.Error(), "rejects fresh tokens") {
				t.Errorf("error does not say what happened: %v", err)
			}
		default:
			t.Fatalf("request %d: %v %v, want ErrTokenRejected", i+1, resp, err)
		}
	}
	if c := f.srv.RefreshCalls(); c != 1 || rejected != n-1 {
		t.Errorf("%d requests to an always-401 FHIR server: %d token calls (want 1), %d ErrTokenRejected (want %d)",
			n, c, rejected, n-1)
	}

	// After the cool-down the session may try one refresh again.
	f.clock.Advance(core.TokenRejectedCoolDown + time.Second)
	resp, err := get()
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the cool-down: %v %v, want a refresh and the replay's 401", resp, err)
	}
	resp.Body.Close()
	if c := f.srv.RefreshCalls(); c != 2 {
		t.Errorf("after the cool-down: %d token calls, want 2", c)
	}
	f.checkNoReuse()
}

// TestSlowTokenEndpointOutlastsClientTimeout: an HTTPClient with a
// Timeout shorter than a token call (200 ms against 700 ms) must not cut
// the call short of RefreshTimeout: the refresh succeeds, and the grant is
// neither reused nor revoked.
func TestSlowTokenEndpointOutlastsClientTimeout(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
		c.RefreshTimeout = 5 * time.Second
	})
	session, saved := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(700 * time.Millisecond)
		next.ServeHTTP(w, r)
	})
	f.clock.Advance(time.Hour)
	tok, err := f.token(session)
	if err != nil {
		t.Fatalf("refresh with a 700 ms token endpoint and a 200 ms client timeout: %v", err)
	}
	if tok.AccessToken == saved.AccessToken {
		t.Fatal("the token was not refreshed")
	}
	f.srv.SetTokenHook(nil)
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); err != nil {
		t.Fatalf("next refresh: %v", err)
	}
	if c := f.srv.RefreshCalls(); c != 2 {
		t.Errorf("refresh calls = %d, want 2", c)
	}
	f.checkNoReuse()
}
