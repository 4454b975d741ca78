package adaptertest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The request headers of a browser navigation and of an API call.
var (
	Navigate = map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
	APICall  = map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "application/json"}
)

// LoginURL: with the login URL /launch (app's option), a navigation
// without a token is sent there (303), carrying the page it asked for as
// return_to so that the login comes back to it, and an API call gets the
// JSON 401; a
// navigation with a token passes, and one during an outage of the token
// endpoint gets the 503, not a redirect.
func LoginURL(t *testing.T, app App) {
	f := Start(t, app)
	if code, loc, _ := f.Do("/api/me", Navigate); code != http.StatusSeeOther || loc != "/launch?return_to=%2Fapi%2Fme" {
		t.Errorf("navigation without a token: %d %q, want 303 to /launch?return_to=%%2Fapi%%2Fme", code, loc)
	}
	if code, loc, _ := f.Do("/api/me?tab=labs&x=%2F", Navigate); code != http.StatusSeeOther ||
		loc != "/launch?return_to="+url.QueryEscape("/api/me?tab=labs&x=%2F") {
		t.Errorf("navigation with a query: %d %q, want 303 to /launch with the path and query as return_to", code, loc)
	}
	// A page SafeReturnTo refuses (here too long for a launch to keep) is
	// not carried: the login then lands on the launcher's AfterLogin.
	long := "/api/me?q=" + strings.Repeat("a", 2100)
	if code, loc, _ := f.Do(long, Navigate); code != http.StatusSeeOther || loc != "/launch" {
		t.Errorf("navigation to a page too long to carry: %d %q, want 303 to /launch", code, loc)
	}
	if code, loc, body := f.Do("/api/me", APICall); code != http.StatusUnauthorized || loc != "" || body.Error != "reauth_required" {
		t.Errorf("API call without a token: %d %q %v, want the JSON 401", code, loc, body)
	}

	f.Login()
	if code, _, _ := f.Do("/api/me", Navigate); code != http.StatusOK {
		t.Errorf("navigation with a token: %d, want 200", code)
	}
	// A transient failure is not a reason to log in again.
	f.Clock.Advance(time.Hour + time.Second)
	f.Server.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	if code, loc, _ := f.Do("/api/me", Navigate); code != http.StatusServiceUnavailable || loc != "" {
		t.Errorf("navigation during an outage: %d %q, want 503", code, loc)
	}
}

// LoginURLNoLoop: with the login URL /api/me (app's option), behind the
// middleware, the login page is never a redirect target for itself.
func LoginURLNoLoop(t *testing.T, app App) {
	f := Start(t, app)
	if code, loc, _ := f.Do("/api/me", Navigate); code != http.StatusUnauthorized || loc != "" {
		t.Errorf("the login page itself: %d %q, want 401 without a redirect", code, loc)
	}
	if code, loc, _ := f.Do("/api/patient", Navigate); code != http.StatusSeeOther || loc != "/api/me?return_to=%2Fapi%2Fpatient" {
		t.Errorf("another page: %d %q, want 303 to /api/me?return_to=%%2Fapi%%2Fpatient", code, loc)
	}
}

// LoginURLAndErrorHandler: the one rule of every adapter when an app sets
// both a login URL and an error handler, in either order: the login URL
// takes the browser navigations that need a new authorization (303 to
// /launch), and the error handler (here one answering 418) answers
// everything else. Neither silently drops the other. app must have the
// login URL /launch and that error handler.
func LoginURLAndErrorHandler(t *testing.T, app App) {
	f := Start(t, app)
	if code, loc, _ := f.Do("/api/me", Navigate); code != http.StatusSeeOther || loc != "/launch?return_to=%2Fapi%2Fme" {
		t.Errorf("navigation without a token: %d %q, want 303 to /launch?return_to=… (the login URL)", code, loc)
	}
	if code, loc, _ := f.Do("/api/me", APICall); code != http.StatusTeapot || loc != "" {
		t.Errorf("API call without a token: %d %q, want the error handler's 418", code, loc)
	}
	f.Login()
	f.Clock.Advance(time.Hour + time.Second)
	f.Server.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	if code, loc, _ := f.Do("/api/me", Navigate); code != http.StatusTeapot || loc != "" {
		t.Errorf("navigation during an outage: %d %q, want the error handler's 418", code, loc)
	}
}
