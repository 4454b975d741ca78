package adaptertest

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
)

// App builds, with the adapter's framework, the app the scenarios drive,
// without LoadAndSave, with the adapter's middleware over r configured as
// the adapter's test chose:
//
//   - GET /login saves e.Grant() through r (as a callback would) and
//     answers 204;
//   - GET /api/me, behind the middleware, answers the attached access token
//     as text, or 500 "no token" if none is attached;
//   - GET /api/patient, behind the middleware, answers what
//     e.Server.FHIRBaseURL+"/Patient/123" answers through r.Client;
//   - GET /api/public, behind the middleware, answers "token" or "no token"
//     as a token is attached or not.
type App func(e *Env, r *core.Refresher) http.Handler

// Start returns an Env serving app, with the Env's Refresher, at Env.URL.
func Start(tb testing.TB, app App, opts ...Option) *Env {
	tb.Helper()
	e := NewEnv(tb, opts...)
	e.URL = e.Serve(app(e, e.Refresher))
	return e
}

// Get requests base+path with the Env's client and returns the status, the
// Retry-After header and the body. It may run in another goroutine than
// the test's.
func (e *Env) Get(base, path string) (int, string, string) {
	resp, err := e.Client.Get(base + path)
	if err != nil {
		e.TB.Error(err)
		return 0, "", ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.TB.Error(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
}

// Do sends a GET of path to the app with the given headers and returns the
// status, the Location header and the decoded JSON error, if any.
func (e *Env) Do(path string, header map[string]string) (int, string, core.ErrorBody) {
	e.TB.Helper()
	req, err := http.NewRequest("GET", e.URL+path, nil)
	if err != nil {
		e.TB.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		e.TB.Fatal(err)
	}
	defer resp.Body.Close()
	var body core.ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header.Get("Location"), body
}

// Login logs the client in through the app's /login.
func (e *Env) Login() {
	e.TB.Helper()
	if code, _, body := e.Get(e.URL, "/login"); code != http.StatusNoContent {
		e.TB.Fatalf("login: %d %s", code, body)
	}
}

// Me returns the access token /api/me at base sees, failing the test on
// another answer than 200.
func (e *Env) Me(base string) string {
	e.TB.Helper()
	code, _, body := e.Get(base, "/api/me")
	if code != http.StatusOK {
		e.TB.Fatalf("/api/me: %d %s", code, body)
	}
	return body
}

// Storm runs n GETs of the app's path at once and returns their statuses
// and bodies.
func (e *Env) Storm(n int, path string) ([]int, []string) {
	codes, bodies := make([]int, n), make([]string, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			codes[i], _, bodies[i] = e.Get(e.URL, path)
		})
	}
	start.Done()
	done.Wait()
	return codes, bodies
}
