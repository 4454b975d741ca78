package ginadapter_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/ginadapter"
)

// do sends a GET of path with the given headers and returns the status, the
// Location header and the decoded JSON error, if any.
func (f *fixture) do(path string, header map[string]string) (int, string, core.ErrorBody) {
	f.t.Helper()
	req, err := http.NewRequest("GET", f.app.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body core.ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header.Get("Location"), body
}

var (
	navigate = map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
	apiCall  = map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "application/json"}
)

func TestLoginURL(t *testing.T) {
	f := newFixture(t, ginadapter.WithLoginURL("/launch"))
	if code, loc, _ := f.do("/api/me", navigate); code != http.StatusSeeOther || loc != "/launch" {
		t.Errorf("navigation without a token: %d %q, want 303 to /launch", code, loc)
	}
	if code, loc, body := f.do("/api/me", apiCall); code != http.StatusUnauthorized || loc != "" || body.Error != "reauth_required" {
		t.Errorf("API call without a token: %d %q %v, want the JSON 401", code, loc, body)
	}

	f.login()
	if code, _, _ := f.do("/api/me", navigate); code != http.StatusOK {
		t.Errorf("navigation with a token: %d, want 200", code)
	}
	// A transient failure is not a reason to log in again.
	f.clock.Advance(time.Hour + time.Second)
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	if code, loc, _ := f.do("/api/me", navigate); code != http.StatusServiceUnavailable || loc != "" {
		t.Errorf("navigation during an outage: %d %q, want 503", code, loc)
	}
}

// TestLoginURLNoLoop: a login URL behind the middleware is never a
// redirect target for itself.
func TestLoginURLNoLoop(t *testing.T) {
	f := newFixture(t, ginadapter.WithLoginURL("/api/me"))
	if code, loc, _ := f.do("/api/me", navigate); code != http.StatusUnauthorized || loc != "" {
		t.Errorf("the login page itself: %d %q, want 401 without a redirect", code, loc)
	}
	if code, loc, _ := f.do("/api/patient", navigate); code != http.StatusSeeOther || loc != "/api/me" {
		t.Errorf("another page: %d %q, want 303 to /api/me", code, loc)
	}
}

// TestLoginURLYieldsToErrorHandler: an explicit ErrorHandler wins over
// LoginURL.
func TestLoginURLYieldsToErrorHandler(t *testing.T) {
	f := newFixture(t, ginadapter.WithLoginURL("/launch"), ginadapter.WithErrorHandler(func(c *gin.Context, err error) {
		c.String(http.StatusTeapot, "mine")
	}))
	if code, _, _ := f.do("/api/me", navigate); code != http.StatusTeapot {
		t.Errorf("got %d, want the app's handler", code)
	}
}
