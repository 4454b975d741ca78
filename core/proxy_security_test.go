package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// forwarded records the requests the proxy sent to the FHIR server (not
// those to the token endpoint), as they left the app.
type forwarded struct {
	mu   sync.Mutex
	reqs []*http.Request
	base http.RoundTripper
}

func (f *forwarded) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/token") {
		f.mu.Lock()
		f.reqs = append(f.reqs, req.Clone(context.Background()))
		f.mu.Unlock()
	}
	return f.base.RoundTrip(req)
}

func (f *forwarded) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *forwarded) last() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return nil
	}
	return f.reqs[len(f.reqs)-1]
}

// newWatchedProxyApp is newProxyApp with a record of what was forwarded,
// with Config.FHIRBaseURLs set to the upstream when bases is true (and
// empty, as documented to be allowed, when false).
func newWatchedProxyApp(t *testing.T, pcfg core.ProxyConfig, bases bool, edit ...func(*core.Config)) (*proxyApp, *forwarded) {
	t.Helper()
	fw := &forwarded{base: http.DefaultTransport}
	edit = append([]func(*core.Config){func(c *core.Config) {
		if c.HTTPClient == nil {
			c.HTTPClient = &http.Client{}
		}
		c.HTTPClient.Transport = fw
	}}, edit...)
	a := newProxyApp(t, smarttest.Options{}, pcfg, append(edit, func(c *core.Config) {
		if bases { // the mock server's FHIR base, next to its token endpoint
			u, _ := url.Parse(c.TokenURL)
			u.Path = "/fhir"
			c.FHIRBaseURLs = []string{u.String()}
		}
	})...)
	return a, fw
}

// Items 1 and 14: a path segment that some server could resolve as a dot
// segment (after stripping ;parameters, trailing dots or spaces, or any
// number of decodings) or that holds a control character gets 400, and
// nothing is forwarded, with and without Config.FHIRBaseURLs.
func TestProxyRefusesEveryDotSegmentVariant(t *testing.T) {
	paths := []string{
		"/fhir/..;/admin/secret",
		"/fhir/..;jsessionid=x/admin/secret",
		"/fhir/%2e%2e;/admin/secret",
		"/fhir/%2e%2e%3b/admin/secret",
		"/fhir/%2E%2E%3Bx/admin/secret",
		"/fhir/.../admin/secret",
		"/fhir/..%20/admin/secret",
		"/fhir/..%2520/admin/secret",
		"/fhir/..%09/admin/secret",
		"/fhir/.%20./admin",
		"/fhir/. ./admin",
		"/fhir/Patient/..;/..;/admin",
		"/fhir/.;/Patient",
		"/fhir/%252e%252e%253b/admin",
		"/fhir/Patient%00",
		"/fhir/Patient%0d%0aX-Injected:%201",
		"/fhir/Patient%7f",
		"/fhir/Patient%2500",
	}
	for _, bases := range []bool{false, true} {
		a, fw := newWatchedProxyApp(t, core.ProxyConfig{}, bases)
		for _, p := range paths {
			before := fw.count()
			resp := a.do("GET", p, nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusBadRequest || fw.count() != before {
				t.Errorf("FHIRBaseURLs set %v: GET %s: %d %s, %d requests forwarded; want 400 and none",
					bases, p, resp.StatusCode, body, fw.count()-before)
			}
		}
		// A plain FHIR path still goes through.
		if resp := a.do("GET", "/fhir/Patient/123", nil); resp.StatusCode != 200 {
			t.Errorf("FHIRBaseURLs set %v: GET /fhir/Patient/123: %d", bases, resp.StatusCode)
		} else {
			resp.Body.Close()
		}
	}
}

// wantSafeAnswer checks the headers every answer of the proxy carries.
func wantSafeAnswer(t *testing.T, what string, h http.Header) {
	t.Helper()
	// scs adds no-cache="Set-Cookie" when it writes the session cookie.
	if got := h.Values("Cache-Control"); len(got) == 0 || got[0] != "no-store" || len(got) > 1 && (len(got) > 2 || got[1] != `no-cache="Set-Cookie"`) {
		t.Errorf("%s: Cache-Control = %q, want no-store", what, got)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", what, got)
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"sandbox", "default-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: Content-Security-Policy = %q, want %s", what, csp, d)
		}
	}
}

// Items 2 and 3: whatever the upstream says about caching and content,
// the browser gets no-store, nosniff, a sandboxing CSP, and active or
// untyped content only as an attachment.
func TestProxyAnswersCannotBeCachedOrRun(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	for _, tc := range []struct {
		cacheControl, contentType string
		attachment                bool
		wantType                  string
	}{
		{"max-age=600", "application/fhir+json", false, "application/fhir+json"},
		{"public, max-age=31536000, immutable", "application/fhir+json", false, "application/fhir+json"},
		{"private, max-age=600", "text/html", true, "text/html"},
		{"s-maxage=600", "image/svg+xml", true, "image/svg+xml"},
		{"", "application/xhtml+xml", true, "application/xhtml+xml"},
		{"", "text/xml", true, "text/xml"},
		{"", "application/javascript", true, "application/javascript"},
		{"", "", true, "application/octet-stream"},
	} {
		a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if tc.cacheControl != "" {
				w.Header().Set("Cache-Control", tc.cacheControl)
			}
			w.Header().Set("Expires", "Thu, 01 Dec 2099 16:00:00 GMT")
			if tc.contentType != "" {
				w.Header().Set("Content-Type", tc.contentType)
			} else {
				w.Header()["Content-Type"] = nil // no sniffing upstream either
			}
			io.WriteString(w, `<html><script>fetch("/fhir/Patient/123")</script></html>`)
		})
		resp := a.do("GET", "/fhir/Binary/1", nil)
		readAll(t, resp)
		what := "upstream " + tc.contentType + " / " + tc.cacheControl
		wantSafeAnswer(t, what, resp.Header)
		if got := resp.Header.Get("Expires"); got != "" {
			t.Errorf("%s: Expires = %q reached the browser", what, got)
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, tc.wantType) {
			t.Errorf("%s: Content-Type = %q, want %s", what, got, tc.wantType)
		}
		if cd := resp.Header.Get("Content-Disposition"); tc.attachment != strings.HasPrefix(cd, "attachment") {
			t.Errorf("%s: Content-Disposition = %q, want attachment %v", what, cd, tc.attachment)
		}
	}
	// The proxy's own answers too.
	req, _ := http.NewRequest("GET", a.app.URL+"/fhir/Patient/123", nil)
	resp, err := a.browser.Do(req) // no X-CSRF
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	wantSafeAnswer(t, "the proxy's 403", resp.Header)
	a.srv.SetFHIRHook(nil)
	resp = a.do("GET", "/fhir/..;/x", nil)
	readAll(t, resp)
	wantSafeAnswer(t, "the proxy's 400", resp.Header)
}

// Item 4: HTTPClient.Timeout bounds a proxied call; a hung upstream gets
// 504.
func TestProxyTimeout(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{}, func(c *core.Config) {
		c.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
	})
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		next.ServeHTTP(w, r)
	})
	start := time.Now()
	resp := a.do("GET", "/fhir/Patient/123", nil)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("hung upstream: %d %s after %v, want 504", resp.StatusCode, body, time.Since(start).Round(time.Millisecond))
	}
	wantSafeAnswer(t, "the 504", resp.Header)
}

// Item 5: a FHIR server that rejects fresh tokens is reported as such to
// the app's ErrorHandler and to the page, from its first 401 on.
func TestProxyTokenRejected(t *testing.T) {
	var mu sync.Mutex
	var seen []error
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			mu.Lock()
			seen = append(seen, err)
			mu.Unlock()
			core.WriteError(w, r, err)
		},
	})
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	for i := range 3 {
		resp := a.do("GET", "/fhir/Patient/123", nil)
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"token_rejected"`) {
			t.Errorf("request %d: %d %s, want 403 token_rejected", i+1, resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("ErrorHandler called %d times, want 3", len(seen))
	}
	for i, err := range seen {
		if !errors.Is(err, core.ErrTokenRejected) {
			t.Errorf("ErrorHandler's error %d = %v, want ErrTokenRejected", i+1, err)
		}
	}
	if n := a.srv.RefreshCalls(); n != 1 {
		t.Errorf("refresh calls = %d, want 1 (one per cool-down)", n)
	}
}

func TestErrorResponseTokenRejected(t *testing.T) {
	err := &core.TokenRejectedError{Code: "invalid_token", CoolDown: core.TokenRejectedCoolDown}
	status, body := core.ErrorResponse(err)
	if status != http.StatusForbidden || body.Error != "token_rejected" || !strings.Contains(body.ErrorDescription, "refuses") {
		t.Errorf("ErrorResponse = %d %+v, want 403 token_rejected", status, body)
	}
}

// Item 6: the query arrives byte for byte.
func TestProxyQueryArrivesByteForByte(t *testing.T) {
	a, fw := newWatchedProxyApp(t, core.ProxyConfig{}, false)
	for _, q := range []string{
		"name=Smith;Jones&_count=10",
		"identifier=urn:oid:1.2|100%25&_count=10",
		"identifier=100%&_count=10",
		"code=a%zz&_count=10",
		"name=Shaw&name=Smith&_sort=-date",
	} {
		resp := a.do("GET", "/fhir/Patient?"+q, nil)
		readAll(t, resp)
		got := fw.last()
		if got == nil || got.URL.RawQuery != q {
			var raw string
			if got != nil {
				raw = got.URL.RawQuery
			}
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("?%s reached the upstream as ?%s (browser got %d), want byte for byte or 400", q, raw, resp.StatusCode)
			}
		}
	}
}

// Items 7 and 12: the request headers that reach the upstream are an
// allow-list: nothing that forwards, reroutes, overrides the method or
// re-identifies the client.
func TestProxyRequestHeadersAllowList(t *testing.T) {
	hostile := []string{
		"X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Scheme",
		"X-Forwarded-Ssl", "X-Forwarded-Uri", "X-Forwarded-Path", "X-Forwarded-For", "X-Forwarded-Host",
		"X-Forwarded-Proto", "Forwarded", "X-Real-Ip",
		"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Url",
		"X-Rewrite-Url", "X-Original-Method", "True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
		"Cf-Connecting-Ip", "Fastly-Client-Ip", "Cookie", "Authorization", "Proxy-Authorization", "X-Csrf",
	}
	for _, on := range []bool{false, true} {
		a, fw := newWatchedProxyApp(t, core.ProxyConfig{ForwardedHeaders: on}, false)
		var hdr []string
		for _, h := range hostile {
			if h == "X-Csrf" {
				continue
			}
			hdr = append(hdr, h, "DELETE")
		}
		hdr = append(hdr, "Accept", "application/fhir+json", "If-None-Match", `W/"1"`, "Prefer", "return=minimal")
		resp := a.do("GET", "/fhir/Patient/123", nil, hdr...)
		readAll(t, resp)
		got := fw.last()
		if got == nil {
			t.Fatal("nothing forwarded")
		}
		for _, h := range hostile {
			for _, v := range got.Header.Values(h) {
				if v == "DELETE" || h == "X-Csrf" || h == "Cookie" {
					t.Errorf("ForwardedHeaders %v: the browser's %s reached the upstream: %q", on, h, v)
				}
			}
		}
		for _, h := range []string{"Accept", "If-None-Match", "Prefer"} {
			if got.Header.Get(h) == "" {
				t.Errorf("ForwardedHeaders %v: %s was not forwarded", on, h)
			}
		}
		if got.Method != "GET" {
			t.Errorf("method = %s", got.Method)
		}
	}
}

// Item 8: a rewritten URL resolves under the prefix, or is left pointing
// at the upstream.
func TestProxyRewrittenURLsStayUnderThePrefix(t *testing.T) {
	for _, prefix := range []string{"/fhir/", "/"} {
		a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{Prefix: prefix})
		base := a.srv.FHIRBaseURL
		app, _ := url.Parse(a.app.URL + prefix)
		for _, loc := range []string{
			base + "/../../logout",
			base + "/%2e%2e/%2e%2e/logout",
			base + "//evil.example/x",
			base + "/\\evil.example/x",
			base + "/Patient/../../../logout",
			base + "/..;/logout",
		} {
			a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				w.Header().Set("Location", loc)
				w.Header().Set("Content-Type", "application/fhir+json")
				io.WriteString(w, `{"resourceType":"Bundle","link":[{"relation":"next","url":"`+strings.ReplaceAll(loc, `\`, `\\`)+`"}]}`)
			})
			resp := a.do("GET", prefix+"Patient", nil)
			body := readAll(t, resp)
			var b struct{ Link []struct{ URL string } }
			if err := jsonUnmarshal(body, &b); err != nil || len(b.Link) != 1 {
				t.Fatalf("prefix %s: body %s: %v", prefix, body, err)
			}
			for what, got := range map[string]string{"Location": resp.Header.Get("Location"), "link[].url": b.Link[0].URL} {
				if got == loc {
					continue // left pointing at the upstream
				}
				// A browser resolving it (as it does "\" like "/").
				ref, err := url.Parse(strings.ReplaceAll(got, `\`, "/"))
				if err != nil {
					t.Errorf("prefix %s: %s %q became %q, which does not parse", prefix, what, loc, got)
					continue
				}
				res := app.ResolveReference(ref)
				if res.Host != app.Host || !strings.HasPrefix(res.Path, prefix) || res.Path != pathClean(res.EscapedPath()) {
					t.Errorf("prefix %s: %s %q became %q, which a browser resolves to %s", prefix, what, loc, got, res)
				}
			}
		}
	}
}

// pathClean is the path a server or browser ends up at after removing dot
// segments of any encoding.
func pathClean(p string) string {
	dec, err := url.PathUnescape(p)
	if err != nil {
		return ""
	}
	u, _ := url.Parse("http://x" + dec)
	if u == nil {
		return ""
	}
	return u.ResolveReference(&url.URL{}).Path
}

// Item 9: a 1xx answer gets the same hygiene as a final one.
func TestProxyEarlyHintsCarryNoCookie(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Set-Cookie", "upstream=1; Path=/")
		w.Header().Set("Link", "</evil.js>; rel=preload; as=script")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Set-Cookie")
		w.Header().Del("Link")
		next.ServeHTTP(w, r)
	})
	var mu sync.Mutex
	var early []textproto.MIMEHeader
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			early = append(early, h)
			mu.Unlock()
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", a.app.URL+"/fhir/Patient/123", nil)
	req.Header.Set("X-CSRF", "1")
	resp, err := a.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	mu.Lock()
	defer mu.Unlock()
	for _, h := range early {
		if len(h["Set-Cookie"]) > 0 || len(h["Link"]) > 0 {
			t.Errorf("a 1xx answer reached the browser with %v", h)
		}
	}
}

// Items 10 and 11: the response headers that reach the browser are an
// allow-list, and the token never comes back in any of them or in the
// body.
func TestProxyResponseHeadersAllowListAndTokenScrub(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	var token string
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		auth := r.Header.Get("Authorization")
		token = strings.TrimPrefix(auth, "Bearer ")
		h := w.Header()
		h.Set("Clear-Site-Data", `"*"`)
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload")
		h.Set("Alt-Svc", `h3=":443"`)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("WWW-Authenticate", `Basic realm="app"`)
		h.Add("WWW-Authenticate", `Bearer error_description="token `+token+` is odd"`)
		h.Set("Authorization", auth)
		h.Set("X-Debug-Auth", token)
		h.Set("Refresh", "0; url=https://evil.example/")
		h.Set("Link", "<https://evil.example/x.css>; rel=stylesheet")
		h.Set("Content-Security-Policy", "script-src *")
		h.Set("Content-Type", "application/fhir+json")
		h.Set("ETag", `W/"3"`)
		h.Set("Last-Modified", "Wed, 02 Dec 2026 10:00:00 GMT")
		h.Set("Trailer", "X-Echo")
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"diagnostics":"token `+token+`"}]}`)
		h.Set("X-Echo", token)
	})
	resp := a.do("GET", "/fhir/Patient/123", nil)
	body := readAll(t, resp)
	if token == "" {
		t.Fatal("no token reached the upstream")
	}
	for _, h := range []string{"Clear-Site-Data", "Strict-Transport-Security", "Alt-Svc", "Access-Control-Allow-Origin",
		"Access-Control-Allow-Credentials", "WWW-Authenticate", "Authorization", "X-Debug-Auth", "Refresh", "Link"} {
		if v := resp.Header.Values(h); len(v) > 0 {
			t.Errorf("the upstream's %s reached the browser: %q", h, redactHeader(strings.Join(v, ", ")))
		}
	}
	if got := resp.Header.Get("ETag"); got != `W/"3"` {
		t.Errorf("ETag = %q, want the upstream's", got)
	}
	if got := resp.Header.Get("Last-Modified"); got == "" {
		t.Error("Last-Modified was dropped")
	}
	wantSafeAnswer(t, "a hostile upstream's answer", resp.Header)
	for k, v := range resp.Header {
		if strings.Contains(strings.Join(v, " "), token) {
			t.Errorf("the token came back in %s", k)
		}
	}
	for k, v := range resp.Trailer {
		if strings.Contains(strings.Join(v, " "), token) {
			t.Errorf("the token came back in the trailer %s", k)
		}
	}
	if strings.Contains(body, token) {
		t.Error("the token came back in the body")
	}
}

// Item 13: Upgrade is refused; nothing is tunnelled to the upstream.
func TestProxyRefusesUpgrade(t *testing.T) {
	a, fw := newWatchedProxyApp(t, core.ProxyConfig{}, false)
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Header.Get("Upgrade") == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		w.WriteHeader(http.StatusSwitchingProtocols)
	})
	before := fw.count()
	resp := a.do("GET", "/fhir/Patient/123", nil,
		"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		readAll(t, resp)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode < 400 || fw.count() != before {
		t.Errorf("Upgrade: websocket: %d, %d requests forwarded; want refused, none forwarded", resp.StatusCode, fw.count()-before)
	}
}

// Item 15: a session without a token gets 401 before any byte of its body
// is read.
func TestProxyNoTokenAnswersBeforeReadingTheBody(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	stranger := &http.Client{} // no session cookie
	body, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	context.AfterFunc(ctx, func() { w.CloseWithError(ctx.Err()) })
	req, _ := http.NewRequestWithContext(ctx, "POST", a.app.URL+"/fhir/Patient", body)
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Content-Type", "application/fhir+json")
	req.ContentLength = 1 << 20
	go w.Write([]byte(`{"resourceType":`)) // then nothing: a slow body
	resp, err := stranger.Do(req)
	if err != nil {
		t.Fatalf("POST with a slow body and no session: %v, want an answer", err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST with no session: %d, want 401", resp.StatusCode)
	}
}

// Item 17: relative Location values and entry[].response.location are
// rewritten too, and the proxy's log lines go to Config.Logger.
func TestProxyRewritesRelativeLocations(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	for _, tc := range []struct{ location, want string }{
		{"/fhir/Patient/9/_history/1", "/fhir/Patient/9/_history/1"},
		{"Patient/9/_history/1", "/fhir/Patient/9/_history/1"}, // relative to the request, POST /fhir/Patient
		{"Patient/9/../../../../logout", "http://UPSTREAM/logout"},
	} {
		a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Location", tc.location)
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created","location":"Patient/9/_history/1"}},{"response":{"status":"201 Created","location":"`+a.srv.FHIRBaseURL+`/Observation/4/_history/1"}}]}`)
		})
		resp := a.do("POST", "/fhir/Patient", strings.NewReader(`{"resourceType":"Patient"}`), "Content-Type", "application/fhir+json")
		body := readAll(t, resp)
		if got, want := resp.Header.Get("Location"), strings.Replace(tc.want, "http://UPSTREAM", strings.TrimSuffix(a.srv.FHIRBaseURL, "/fhir"), 1); got != want {
			t.Errorf("Location %q became %q, want %q", tc.location, got, want)
		}
		var b struct {
			Entry []struct{ Response struct{ Location string } }
		}
		if err := jsonUnmarshal(body, &b); err != nil || len(b.Entry) != 2 {
			t.Fatalf("body %s: %v", body, err)
		}
		if got := b.Entry[0].Response.Location; got != "/fhir/Patient/9/_history/1" {
			t.Errorf("a relative entry[].response.location became %q", got)
		}
		if got := b.Entry[1].Response.Location; got != "/fhir/Observation/4/_history/1" {
			t.Errorf("an absolute entry[].response.location became %q", got)
		}
	}
}

func TestProxyLogsToConfigLogger(t *testing.T) {
	var std bytes.Buffer
	saved := log.Writer()
	log.SetOutput(&std)
	defer log.SetOutput(saved)
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, `{"resourceType":"Bundle","entry":[}`) // malformed: the copy fails
	})
	req, _ := http.NewRequest("GET", a.app.URL+"/fhir/Patient", nil)
	req.Header.Set("X-CSRF", "1")
	if resp, err := a.browser.Do(req); err == nil { // the proxy cuts the answer
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	a.app.Close() // waits for the handler, and its log lines
	if std.Len() > 0 {
		t.Errorf("the proxy logged to the process's default logger: %s", std.String())
	}
	if !strings.Contains(a.logs.String(), "proxy") {
		t.Errorf("Config.Logger got no proxy line:\n%s", a.logs.String())
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// Item 17: a batch or transaction POSTed to the base carries its own
// methods, so it is refused when Methods leaves one out.
func TestProxyBatchHonoursMethods(t *testing.T) {
	transaction := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/123"}}]}`
	for _, tc := range []struct {
		methods []string
		status  int
	}{
		{[]string{"GET", "POST"}, http.StatusMethodNotAllowed},
		{nil, http.StatusOK}, // the default: every method
	} {
		a, fw := newWatchedProxyApp(t, core.ProxyConfig{Methods: tc.methods}, false)
		a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Content-Type", "application/fhir+json")
			io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response"}`)
		})
		a.browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		before := fw.count()
		resp := a.do("POST", "/fhir/", strings.NewReader(transaction), "Content-Type", "application/fhir+json")
		readAll(t, resp)
		refused := resp.StatusCode == http.StatusMethodNotAllowed
		if refused != (tc.status == http.StatusMethodNotAllowed) || refused != (fw.count() == before) {
			t.Errorf("Methods %v: POST of a transaction: %d, %d forwarded; want %d", tc.methods, resp.StatusCode, fw.count()-before, tc.status)
		}
		// POST of a resource is no batch.
		resp = a.do("POST", "/fhir/Patient", strings.NewReader(`{"resourceType":"Patient"}`), "Content-Type", "application/fhir+json")
		readAll(t, resp)
		if resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("Methods %v: POST /fhir/Patient: 405", tc.methods)
		}
	}
}

// TestProxyTokenCannotBeReadInPieces: the mask sees one answer at a time,
// so a page holding the session cookie must not get an echoing answer a
// few bytes at a time (Range), where no piece holds the whole token.
func TestProxyTokenCannotBeReadInPieces(t *testing.T) {
	a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
	var token string
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/fhir+json")
		body := `{"resourceType":"OperationOutcome","issue":[{"diagnostics":"token ` + token + `"}]}`
		// ServeContent honours Range, as a server's Binary does.
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(body))
	})
	var pieces strings.Builder
	for from := 0; from < 400; from += 8 {
		resp := a.do("GET", "/fhir/Binary/1", nil, "Range", fmt.Sprintf("bytes=%d-%d", from, from+7))
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Range") != "" || resp.Header.Get("Accept-Ranges") != "" {
			t.Errorf("Range bytes=%d-%d: status %d, Content-Range %q, Accept-Ranges %q; want the whole answer, 200",
				from, from+7, resp.StatusCode, resp.Header.Get("Content-Range"), resp.Header.Get("Accept-Ranges"))
		}
		if strings.Contains(body, token) {
			t.Fatal("the token came back whole")
		}
		if resp.StatusCode != http.StatusPartialContent {
			break
		}
		pieces.WriteString(body)
	}
	if token == "" {
		t.Fatal("no token reached the upstream")
	}
	if strings.Contains(pieces.String(), token) {
		t.Error("the page rebuilt the token from Range answers")
	}
}
