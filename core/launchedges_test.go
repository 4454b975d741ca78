package core_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// TestLaunchPagesHeaders (issue 19 item 14): the launch's and the
// callback's answers, error pages included, carry a Content-Security-Policy
// with frame-ancestors, and Referrer-Policy no-referrer (the callback's URL
// holds the code and state).
func TestLaunchPagesHeaders(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{
		"/launch?iss=https://evil.example/fhir&launch=x", // error page
		"/launch",                  // redirect to the authorization endpoint
		"/callback?state=x&code=y", // error page
		"/callback?error=access_denied&state=x",
	} {
		resp, err := c.Get(a.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp, ref := resp.Header.Get("Content-Security-Policy"), resp.Header.Get("Referrer-Policy")
		t.Logf("%s: %d; CSP %q; Referrer-Policy %q", path, resp.StatusCode, csp, ref)
		if !strings.Contains(csp, "frame-ancestors") || !strings.Contains(csp, "default-src 'none'") || ref != "no-referrer" {
			t.Errorf("%s: %d with CSP %q, Referrer-Policy %q", path, resp.StatusCode, csp, ref)
		}
	}
}

// TestAnonymousLaunchSessionBounded (issue 19 item 14): the session an
// anonymous GET /launch creates lives as long as its launch may (twice
// StateTTL: a late callback is told it came late), not the session
// manager's Lifetime, until a login saves a token.
func TestAnonymousLaunchSessionBounded(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	a.sm.IdleTimeout = 0 // scs's default: the Lifetime alone bounds a session
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(a.url + "/launch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == a.sm.Cookie.Name {
			cookie = ck
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	life := time.Until(cookie.Expires)
	t.Logf("anonymous launch session expires in %v (Lifetime %v, StateTTL %v)", life.Round(time.Minute), a.sm.Lifetime, core.DefaultLaunchStateTTL)
	if life > 2*core.DefaultLaunchStateTTL+time.Minute {
		t.Errorf("the anonymous launch's session lives %v, want at most 2×StateTTL", life)
	}
	// A login gives the session its full Lifetime.
	b := newBrowser(t)
	if res := a.login(b, ""); res.status != http.StatusSeeOther {
		t.Fatalf("login: %d %s", res.status, res.body)
	}
	u := a.url + "/me"
	req, _ := http.NewRequest("GET", u, nil)
	for _, ck := range b.c.Jar.Cookies(req.URL) {
		if ck.Name == a.sm.Cookie.Name {
			ctx, err := a.sm.Load(req.Context(), ck.Value)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Until(a.sm.Deadline(ctx)); d < a.sm.Lifetime-time.Minute {
				t.Errorf("after the login the session lives %v, want the Lifetime %v", d, a.sm.Lifetime)
			}
		}
	}
}

// TestSessionMissingAdvice (issue 19 item 14): the session_missing page
// names what an iframe launch needs in Chromium (SameSite=None; Secure;
// Partitioned) and the localhost vs 127.0.0.1 mismatch.
func TestSessionMissingAdvice(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	cb := a.authorize(b, a.launch(b, ""))
	res := newBrowser(t).get(cb, "Accept", "text/html")
	for _, want := range []string{"session_missing", "SameSite=None; Secure; Partitioned", "localhost", "127.0.0.1"} {
		if !strings.Contains(res.body, want) {
			t.Errorf("session_missing page lacks %q: %s", want, res.body)
		}
	}
}
