package core_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// proxyApp is a browser app's backend: the fixture's session manager around
// a /login route that stores a grant and the FHIR proxy at /fhir/; browser
// is a client with a cookie jar, logged in.
type proxyApp struct {
	*fixture
	app     *httptest.Server
	proxy   http.Handler
	browser *http.Client
}

func newProxyApp(t *testing.T, opts smarttest.Options, pcfg core.ProxyConfig, edit ...func(*core.Config)) *proxyApp {
	t.Helper()
	f := newFixture(t, opts, edit...)
	if pcfg.Upstream == "" {
		pcfg.Upstream = f.srv.FHIRBaseURL
	}
	if pcfg.Prefix == "" {
		pcfg.Prefix = "/fhir/"
	}
	proxy, err := f.r.FHIRProxy(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	// Mounted as Echo's e.Any("/fhir/*") and Gin's router.Any("/fhir/*path")
	// mount it: by a plain prefix, with no router cleaning the path first.
	mount := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path == "/login":
			if err := f.r.Save(req.Context(), f.srv.Grant()); err != nil {
				http.Error(w, err.Error(), 500)
			}
		case strings.HasPrefix(req.URL.Path, pcfg.Prefix):
			proxy.ServeHTTP(w, req)
		default:
			http.NotFound(w, req)
		}
	})
	a := &proxyApp{fixture: f, app: httptest.NewServer(f.sm.LoadAndSave(mount)), proxy: proxy}
	t.Cleanup(a.app.Close)
	jar, _ := cookiejar.New(nil)
	a.browser = &http.Client{Jar: jar}
	resp, err := a.browser.Get(a.app.URL + "/login")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	return a
}

// do sends a request as the page's script would: with the CSRF header.
func (a *proxyApp) do(method, path string, body io.Reader, header ...string) *http.Response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.app.URL+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("X-CSRF", "1")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.browser.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProxyForwardsWithTheSessionToken(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	var seen http.Header
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		seen = r.Header.Clone()
		w.Header().Add("Set-Cookie", "upstream=1; Path=/")
		next.ServeHTTP(w, r)
	})
	resp := a.do("GET", "/fhir/Patient/123", nil,
		"Authorization", "Basic YnJvd3NlcjpzZWNyZXQ=",
		"X-Forwarded-For", "203.0.113.9", "X-Forwarded-Host", "evil.example", "Forwarded", "for=203.0.113.9",
		"Connection", "X-Hop", "X-Hop", "1")
	body := readAll(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, `"family":"Shaw"`) {
		t.Fatalf("GET /fhir/Patient/123: %d %s", resp.StatusCode, body)
	}
	if got := seen.Get("Authorization"); !strings.HasPrefix(got, "Bearer ") || strings.Contains(got, "YnJvd3Nlcjpzd") {
		t.Errorf("upstream Authorization = %q, want the session's bearer token", redactHeader(got))
	}
	for _, h := range []string{"Cookie", "X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Hop", "X-Csrf"} {
		if v := seen.Values(h); len(v) > 0 {
			t.Errorf("upstream got the browser's %s: %q", h, v)
		}
	}
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(c, "upstream=") {
			t.Errorf("the browser got the upstream's Set-Cookie: %q", c)
		}
	}
	if resp.Header.Get("Cache-Control") == "" {
		t.Error("no Cache-Control on a proxied answer")
	}
}

func redactHeader(v string) string {
	if len(v) > 12 {
		return v[:12] + "…"
	}
	return v
}

func TestProxyRefusals(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{MaxBodyBytes: 64})
	before := a.srv.FHIRCalls()
	for _, tc := range []struct {
		name   string
		method string
		path   string
		csrf   string
		body   string
		status int
	}{
		{"no CSRF header", "GET", "/fhir/Patient/123", "", "", 403},
		{"wrong CSRF value", "GET", "/fhir/Patient/123", "true", "", 403},
		{"method not allowed", "OPTIONS", "/fhir/Patient/123", "1", "", 405},
		{"HEAD not allowed by default", "HEAD", "/fhir/Patient/123", "1", "", 405},
		{"dot-dot", "GET", "/fhir/../admin", "1", "", 400},
		{"encoded dot-dot", "GET", "/fhir/%2e%2e/admin", "1", "", 400},
		{"mixed encoded dot-dot", "GET", "/fhir/.%2E/admin", "1", "", 400},
		{"dot-dot after a resource", "GET", "/fhir/Patient/../../admin", "1", "", 400},
		{"encoded slash", "GET", "/fhir/Patient%2F..%2F..%2Fadmin", "1", "", 400},
		{"backslash", "GET", `/fhir/Patient/..\..\admin`, "1", "", 400},
		{"encoded backslash", "GET", "/fhir/..%5Cadmin", "1", "", 400},
		{"double-encoded dot-dot", "GET", "/fhir/%252e%252e/admin", "1", "", 400},
		{"double-encoded slash", "GET", "/fhir/Patient%252F..%252F..%252Fadmin", "1", "", 400},
		{"triple-encoded dot-dot", "GET", "/fhir/%25252e%25252e/admin", "1", "", 400},
		{"dot", "GET", "/fhir/./Patient/123", "1", "", 400},
		{"body over MaxBodyBytes", "POST", "/fhir/Observation", "1", strings.Repeat("x", 65), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Straight to the proxy, behind the session manager, so that
			// no client or mux cleans the path first.
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.csrf != "" {
				req.Header.Set("X-CSRF", tc.csrf)
			}
			u, _ := url.Parse(a.app.URL)
			for _, c := range a.browser.Jar.Cookies(u) {
				req.AddCookie(c)
			}
			rec := httptest.NewRecorder()
			a.sm.LoadAndSave(a.proxy).ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.path, rec.Code, tc.status, rec.Body)
			}
			var e core.ErrorBody
			if tc.method != "HEAD" {
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Errorf("answer is not a JSON error: %q", rec.Body)
				}
			}
			if tc.status == 405 && rec.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if n := a.srv.FHIRCalls() - before; n != 0 {
		t.Errorf("%d refused requests reached the FHIR server", n)
	}
}

func TestProxyChunkedBodyOverLimit(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{MaxBodyBytes: 1024, ReplayBodyBytes: 16})
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"resourceType":"Observation","status":"final","note":"`))
		pw.Write([]byte(strings.Repeat("x", 2000)))
		pw.Write([]byte(`"}`))
		pw.Close()
	}()
	resp := a.do("POST", "/fhir/Observation", pr, "Content-Type", "application/fhir+json")
	body := readAll(t, resp)
	if resp.StatusCode != 413 {
		t.Fatalf("a chunked body over MaxBodyBytes: %d %s, want 413", resp.StatusCode, body)
	}
}

func TestProxy401ReplaysABufferedBody(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	var mu sync.Mutex
	var bodies []string
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		next.ServeHTTP(w, r)
	})
	a.srv.ExpireAccessTokens() // the server rejects the token the session holds
	obs := `{"resourceType":"Observation","status":"final"}`
	resp := a.do("POST", "/fhir/Observation", strings.NewReader(obs), "Content-Type", "application/fhir+json")
	body := readAll(t, resp)
	if resp.StatusCode != 201 || !strings.Contains(body, `"status":"final"`) {
		t.Fatalf("POST after a 401: %d %s", resp.StatusCode, body)
	}
	if c := a.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	if len(bodies) != 2 || bodies[0] != obs || bodies[1] != obs {
		t.Errorf("upstream bodies = %q, want the same body twice", bodies)
	}
	if loc := resp.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "/fhir/Observation/") {
		t.Errorf("Location = %q, want it under the proxy", loc)
	}
	a.checkNoReuse()
}

func TestProxy401WithAStreamedBodyPassesThrough(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{ReplayBodyBytes: 16})
	var got []string
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		next.ServeHTTP(w, r)
	})
	a.srv.ExpireAccessTokens()
	obs := `{"resourceType":"Observation","status":"final","note":"longer than sixteen bytes"}`
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(obs)); pw.Close() }()
	resp := a.do("POST", "/fhir/Observation", pr, "Content-Type", "application/fhir+json")
	body := readAll(t, resp)
	if resp.StatusCode != 401 {
		t.Fatalf("POST of a streamed body after a 401: %d %s, want the 401", resp.StatusCode, body)
	}
	if len(got) != 1 || got[0] != obs {
		t.Errorf("upstream bodies = %q, want the whole body once", got)
	}
	// The next request works, with a refreshed token.
	resp = a.do("GET", "/fhir/Patient/123", nil)
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("GET after: %d %s", resp.StatusCode, body)
	}
	a.checkNoReuse()
}

func TestProxyTokenErrors(t *testing.T) {
	t.Run("no token: 401 JSON", func(t *testing.T) {
		a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
		jar, _ := cookiejar.New(nil)
		a.browser.Jar = jar // a browser without the session
		resp := a.do("GET", "/fhir/Patient/123", nil)
		body := readAll(t, resp)
		var e core.ErrorBody
		if resp.StatusCode != 401 || json.Unmarshal([]byte(body), &e) != nil || e.Error != "reauth_required" {
			t.Fatalf("no session: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("transient refresh failure: 503 with Retry-After", func(t *testing.T) {
		a := newProxyApp(t, smarttest.Options{AccessTokenTTL: time.Hour}, core.ProxyConfig{})
		a.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		})
		a.clock.Advance(2 * time.Hour)
		resp := a.do("GET", "/fhir/Patient/123", nil)
		body := readAll(t, resp)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("transient: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if strings.Contains(body, "busy") {
			t.Errorf("the token endpoint's answer reached the browser: %s", body)
		}
	})
}

func TestProxyStorm(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	a.clock.Advance(2 * time.Hour) // the session's token is due
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", a.app.URL+"/fhir/Patient/123", nil)
			req.Header.Set("X-CSRF", "1")
			resp, err := a.browser.Do(req)
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- errors.New(resp.Status)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := a.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d for 200 concurrent proxied requests, want 1", c)
	}
	a.checkNoReuse()
}

func TestProxyStreamsResponses(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	release := make(chan struct{})
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","entry":[`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, `{"fullUrl":"x"}]}`)
	})
	resp := a.do("GET", "/fhir/Patient", nil)
	defer resp.Body.Close()
	first := make(chan string, 1)
	go func() {
		b := make([]byte, 15)
		n, _ := io.ReadFull(resp.Body, b)
		first <- string(b[:n])
	}()
	select {
	case got := <-first:
		if got != `{"resourceType"` {
			t.Errorf("first bytes = %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no byte reached the browser before the upstream finished")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if !strings.HasSuffix(string(rest), `{"fullUrl":"/fhir/x"}]}`) { // relative to the base
		t.Errorf("end of the body = %q", rest)
	}
}

func TestProxyRewritesBundleLinks(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	base := a.srv.FHIRBaseURL
	bundle := `{"resourceType":"Bundle","type":"searchset","total":2.50,` +
		`"link":[{"relation":"self","url":"` + base + `/Patient?name=shaw"},{"relation":"next","url":"` + base + `/Patient?page=2&_count=1"},{"relation":"other","url":"https://elsewhere.example/fhir/Patient"}],` +
		`"entry":[{"fullUrl":"` + base + `/Patient/123","resource":{"resourceType":"Patient","id":"123","link":[{"url":"` + base + `/Patient/9"}],"text":{"div":"<div>` + base + `/Patient/123</div>"}},` +
		`"search":{"mode":"match"}},{"fullUrl":"urn:uuid:1f2e"}]}`
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
		w.Header().Set("Content-Location", base+"/Patient?name=shaw")
		io.WriteString(w, bundle)
	})
	resp := a.do("GET", "/fhir/Patient?name=shaw", nil)
	body := readAll(t, resp)
	var got struct {
		Link  []struct{ URL string } `json:"link"`
		Entry []struct {
			FullURL  string `json:"fullUrl"`
			Resource struct {
				Link []struct{ URL string } `json:"link"`
				Text struct{ Div string }   `json:"text"`
			} `json:"resource"`
		} `json:"entry"`
		Total json.Number `json:"total"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	want := []string{"/fhir/Patient?name=shaw", "/fhir/Patient?page=2&_count=1", "https://elsewhere.example/fhir/Patient"}
	for i, l := range got.Link {
		if l.URL != want[i] {
			t.Errorf("link[%d].url = %q, want %q", i, l.URL, want[i])
		}
	}
	if got.Entry[0].FullURL != "/fhir/Patient/123" || got.Entry[1].FullURL != "urn:uuid:1f2e" {
		t.Errorf("fullUrls = %q, %q", got.Entry[0].FullURL, got.Entry[1].FullURL)
	}
	if l := got.Entry[0].Resource.Link[0].URL; l != base+"/Patient/9" {
		t.Errorf("a link inside a resource was rewritten: %q", l)
	}
	if d := got.Entry[0].Resource.Text.Div; !strings.Contains(d, base) {
		t.Errorf("narrative was rewritten: %q", d)
	}
	if got.Total != "2.50" {
		t.Errorf("a number changed: %q", got.Total)
	}
	if cl := resp.Header.Get("Content-Location"); cl != "/fhir/Patient?name=shaw" {
		t.Errorf("Content-Location = %q", cl)
	}

	// The browser follows next and stays on the proxy.
	a.srv.SetFHIRHook(nil)
	resp = a.do("GET", got.Link[1].URL, nil)
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Errorf("following next: %d %s", resp.StatusCode, body)
	}
}

func TestProxyLeavesOtherBodiesAlone(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	base := a.srv.FHIRBaseURL
	for _, body := range []string{
		`{"resourceType":"Patient","id":"1","link":[{"url":"` + base + `/Patient/2"}],   "x" : 1.0e2 }`,
		`{ "resourceType" : "OperationOutcome", "issue":[]}`,
		`[1, 2]`,
		`not json at all ` + base,
	} {
		a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Content-Type", "application/fhir+json")
			io.WriteString(w, body)
		})
		resp := a.do("GET", "/fhir/Patient/1", nil)
		if got := readAll(t, resp); got != body {
			t.Errorf("body changed:\n got %s\nwant %s", got, body)
		}
	}
}

func TestFHIRProxyConfig(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.FHIRBaseURLs = []string{"https://fhir.example/R4"} })
	for _, tc := range []struct {
		name  string
		cfg   core.ProxyConfig
		field string
	}{
		{"upstream outside FHIRBaseURLs", core.ProxyConfig{Upstream: "https://other.example/R4", Prefix: "/fhir/"}, "ProxyConfig.Upstream"},
		{"plain http", core.ProxyConfig{Upstream: "http://fhir.example/R4", Prefix: "/fhir/"}, "ProxyConfig.Upstream"},
		{"query", core.ProxyConfig{Upstream: "https://fhir.example/R4?x=1", Prefix: "/fhir/"}, "ProxyConfig.Upstream"},
		{"prefix without slash", core.ProxyConfig{Upstream: "https://fhir.example/R4", Prefix: "/fhir"}, "ProxyConfig.Prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.r.FHIRProxy(tc.cfg)
			var ce *core.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("err = %v, want a ConfigError for %s", err, tc.field)
			}
		})
	}
	if _, err := f.r.FHIRProxy(core.ProxyConfig{Prefix: "/fhir/"}); err != nil {
		t.Errorf("the one FHIRBaseURLs entry as the default upstream: %v", err)
	}
}
