package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
)

// ProxyCSRFHeader is the header (with the value "1") every request to a
// FHIRProxy must carry. A page's fetch can add it; a cross-site form or
// link cannot, and a cross-site script that adds it needs a CORS preflight
// the proxy never grants.
const ProxyCSRFHeader = "X-CSRF"

// csrfKey is ProxyCSRFHeader in canonical form, which http.Header looks up
// without allocating.
const csrfKey = "X-Csrf"

// Defaults of ProxyConfig.
const (
	DefaultProxyMaxBodyBytes    = 10 << 20
	DefaultProxyReplayBodyBytes = 1 << 20
)

// ProxyConfig configures a FHIRProxy.
type ProxyConfig struct {
	// Upstream is the FHIR base URL requests are forwarded to, such as
	// "https://api.healthgorilla.com/fhir/R4". When empty it is the one
	// entry of Config.FHIRBaseURLs. It must use https (or http to
	// loopback) and, when Config.FHIRBaseURLs is set, be under one of them.
	Upstream string
	// Prefix is the path the proxy is mounted at, with its slashes, such as
	// "/fhir/": a request for /fhir/Patient/123 reads the upstream's
	// Patient/123. Required.
	Prefix string
	// Methods are the methods forwarded; others get 405. Default: GET,
	// POST, PUT, PATCH and DELETE.
	Methods []string
	// MaxBodyBytes bounds a request body (DefaultProxyMaxBodyBytes when
	// zero); a larger one gets 413.
	MaxBodyBytes int64
	// ReplayBodyBytes is the largest request body kept in memory so that
	// the request can be sent again after a 401 and a refresh
	// (DefaultProxyReplayBodyBytes when zero). A larger body is streamed
	// to the upstream and, on a 401, the 401 is passed through (the token
	// is refreshed all the same, for the next request).
	ReplayBodyBytes int64
	// ForwardedHeaders, when true, sends X-Forwarded-For, -Host and -Proto
	// to the upstream. The browser's own X-Forwarded-* and Forwarded
	// headers are never passed on.
	ForwardedHeaders bool
	// ErrorHandler answers a request the proxy could not forward (nil:
	// WriteError, with 413 for a body over MaxBodyBytes and 502 when the
	// upstream could not be reached). err matches ErrReauthRequired when
	// the user must launch again: the page should then navigate to the
	// app's launch or login page.
	ErrorHandler func(http.ResponseWriter, *http.Request, error)
}

// FHIRProxy returns a handler that forwards the browser's FHIR requests to
// cfg.Upstream with the session's access token: a backend-for-frontend, so
// that the browser never holds the token. Mount it under cfg.Prefix behind
// the session manager's LoadAndSave, as any handler that uses the session.
//
// Every request must carry ProxyCSRFHeader: 1, or it is refused with 403
// and nothing is forwarded. The browser's Cookie, Authorization and
// X-Forwarded-* headers never reach the upstream, and the upstream's
// Set-Cookie never reaches the browser. A path that would leave the
// upstream base (dot segments, encoded slashes or backslashes) gets 400.
//
// The token is the one of the launch the request names in LaunchHeader
// (the session's most recent launch when it names none; ErrLaunchGone,
// 401, when the session no longer holds it). It is refreshed when it is
// due, and, when the upstream answers
// 401, refreshed once (shared, like every refresh) and the request sent
// again if its body was kept (see ProxyConfig.ReplayBodyBytes). A refresh
// that failed transiently is answered 503 with Retry-After; one that needs
// the user to launch again, 401 with a JSON body.
//
// Responses stream. In FHIR JSON Bundles, link[].url and entry[].fullUrl
// values under the upstream base are rewritten to the proxy's prefix, and
// so are Location and Content-Location headers, so that a page following a
// Bundle's next link stays on the proxy; nothing else in a body changes.
//
// The error is a *ConfigError when cfg is unusable.
func (r *Refresher) FHIRProxy(cfg ProxyConfig) (http.Handler, error) {
	p := &proxy{r: r, cfg: cfg}
	if err := p.init(); err != nil {
		return nil, err
	}
	base := r.cfg.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      sessionTransport{r: r, base: base},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.fail,
	}
	return p, nil
}

type proxy struct {
	r        *Refresher
	cfg      ProxyConfig
	upstream *url.URL
	// from is the upstream base without a trailing slash; to is the
	// prefix with one. A URL from+"/x" (or from+"?q") becomes to+"x".
	from, to string
	base     string // the upstream's escaped path, without a trailing slash
	rp       *httputil.ReverseProxy
}

func (p *proxy) init() error {
	c := &p.cfg
	if c.Upstream == "" && len(p.r.cfg.FHIRBaseURLs) == 1 {
		c.Upstream = p.r.cfg.FHIRBaseURLs[0]
	}
	if c.Upstream == "" {
		return &ConfigError{Field: "ProxyConfig.Upstream", Reason: "required (or exactly one Config.FHIRBaseURLs)"}
	}
	if err := checkEndpoint(c.Upstream); err != nil {
		return &ConfigError{Field: "ProxyConfig.Upstream", Reason: err.Error()}
	}
	u, _ := url.Parse(c.Upstream)
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || hasDotSegment(u) {
		return &ConfigError{Field: "ProxyConfig.Upstream", Reason: "must be a plain base URL (no query, fragment, user info or dot segments)"}
	}
	if err := p.r.tokenAllowed(u); err != nil {
		return &ConfigError{Field: "ProxyConfig.Upstream", Reason: "the access token may not go there: " + err.Error()}
	}
	if !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/") {
		return &ConfigError{Field: "ProxyConfig.Prefix", Reason: `must start and end with "/", such as "/fhir/"`}
	}
	if len(c.Methods) == 0 {
		c.Methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultProxyMaxBodyBytes
	}
	if c.ReplayBodyBytes <= 0 {
		c.ReplayBodyBytes = DefaultProxyReplayBodyBytes
	}
	c.ReplayBodyBytes = min(c.ReplayBodyBytes, c.MaxBodyBytes)
	if c.ErrorHandler == nil {
		c.ErrorHandler = writeProxyError
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	p.upstream = u
	p.base = u.EscapedPath()
	p.from = strings.TrimSuffix(c.Upstream, "/")
	p.to = c.Prefix
	return nil
}

// ServeHTTP checks the request, keeps a small body for a replay, and
// forwards it.
func (p *proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get(csrfKey) != "1" {
		p.cfg.ErrorHandler(w, req, ErrProxyCSRF)
		return
	}
	if !slices.Contains(p.cfg.Methods, req.Method) {
		w.Header().Set("Allow", strings.Join(p.cfg.Methods, ", "))
		p.cfg.ErrorHandler(w, req, ErrProxyMethod)
		return
	}
	if _, err := p.upstreamPath(req.URL); err != nil {
		p.cfg.ErrorHandler(w, req, err)
		return
	}
	if err := p.bufferBody(w, req); err != nil {
		p.cfg.ErrorHandler(w, req, err)
		return
	}
	p.rp.ServeHTTP(w, req)
}

// Errors of a request the proxy refused. Each matches ErrProxyRefused.
var (
	// ErrProxyRefused is matched by every request the proxy refused to
	// forward because of the request itself.
	ErrProxyRefused = errors.New("smartrefresh: proxy refused the request")
	// ErrProxyCSRF: the request lacks ProxyCSRFHeader: 1 (403).
	ErrProxyCSRF = &proxyError{http.StatusForbidden, "csrf", "the request lacks the " + ProxyCSRFHeader + ": 1 header"}
	// ErrProxyMethod: the method is not in ProxyConfig.Methods (405).
	ErrProxyMethod = &proxyError{http.StatusMethodNotAllowed, "method_not_allowed", "the method is not allowed"}
	// ErrProxyPath: the path is not under the prefix, or would leave the
	// upstream base (400).
	ErrProxyPath = &proxyError{http.StatusBadRequest, "invalid_path", "the path is not a FHIR path under the proxy"}
	// ErrProxyBodyTooLarge: the body is over ProxyConfig.MaxBodyBytes (413).
	ErrProxyBodyTooLarge = &proxyError{http.StatusRequestEntityTooLarge, "body_too_large", "the request body is too large"}
	// ErrProxyUpstream: the upstream could not be reached or its answer
	// was cut (502).
	ErrProxyUpstream = &proxyError{http.StatusBadGateway, "bad_gateway", "the FHIR server could not be reached"}
)

// proxyError is one of the ErrProxy errors: its status and JSON error.
type proxyError struct {
	status      int
	code        string
	description string
}

func (e *proxyError) Error() string        { return "smartrefresh: proxy: " + e.description }
func (e *proxyError) Is(target error) bool { return target == ErrProxyRefused && e != ErrProxyUpstream }

// upstreamPath returns the escaped upstream path for a request URL under
// the prefix, or ErrProxyPath.
func (p *proxy) upstreamPath(u *url.URL) (string, error) {
	rest, ok := strings.CutPrefix(u.EscapedPath(), p.cfg.Prefix)
	if !ok {
		return "", ErrProxyPath
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if !safeSegment(seg) {
			return "", ErrProxyPath
		}
	}
	if rest == "" {
		return p.base, nil
	}
	return p.base + "/" + rest, nil
}

// safeSegment reports whether an escaped path segment stays a segment of
// its own however often a server decodes it: never a dot segment, a slash
// or a backslash, after any number of decodings (a server that decodes
// twice turns %252e%252e into ..).
func safeSegment(seg string) bool {
	for {
		if seg == "." || seg == ".." || strings.ContainsAny(seg, `/\`) {
			return false
		}
		if !strings.Contains(seg, "%") {
			return true
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return false
		}
		seg = dec
	}
}

// bufferBody bounds req's body by MaxBodyBytes and, when it fits in
// ReplayBodyBytes, reads it into memory with GetBody set, so that the
// transport can send it again after a 401.
func (p *proxy) bufferBody(w http.ResponseWriter, req *http.Request) error {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	if req.ContentLength > p.cfg.MaxBodyBytes {
		return ErrProxyBodyTooLarge
	}
	req.Body = http.MaxBytesReader(w, req.Body, p.cfg.MaxBodyBytes)
	if req.ContentLength > p.cfg.ReplayBodyBytes {
		return nil // streamed; not replayable
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, p.cfg.ReplayBodyBytes+1))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return ErrProxyBodyTooLarge
		}
		return ErrProxyUpstream
	}
	if int64(len(buf)) > p.cfg.ReplayBodyBytes {
		// A body of unknown length over the replay limit: send what was
		// read, then the rest, as it comes.
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return nil
	}
	req.ContentLength = int64(len(buf))
	req.Body = io.NopCloser(bytes.NewReader(buf))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return nil
}

// rewrite makes the upstream request: the upstream's URL, and none of the
// browser's credentials. ReverseProxy has already removed hop-by-hop and
// X-Forwarded-* headers.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	path, _ := p.upstreamPath(pr.In.URL) // checked in ServeHTTP
	out := pr.Out.URL
	out.Scheme, out.Host, out.User = p.upstream.Scheme, p.upstream.Host, nil
	out.Path, _ = url.PathUnescape(path)
	out.RawPath = path
	pr.Out.Host = ""
	h := pr.Out.Header
	for _, k := range []string{"Cookie", "Authorization", "Proxy-Authorization", csrfKey, "X-Real-Ip"} {
		h.Del(k)
	}
	// Launches (issue 20): the token is the launch's the request names;
	// its name stays here.
	if ctx := LaunchContext(pr.In); ctx != pr.In.Context() {
		pr.Out = pr.Out.WithContext(ctx)
	}
	pr.Out.Header.Del(launchHeaderKey)
	// The transport asks for gzip itself and decompresses, so that Bundles
	// can be rewritten.
	h.Del("Accept-Encoding")
	if p.cfg.ForwardedHeaders {
		pr.SetXForwarded()
	}
}

// modifyResponse keeps the upstream's cookies from the browser, and
// rewrites URLs under the upstream base to the proxy.
func (p *proxy) modifyResponse(resp *http.Response) error {
	h := resp.Header
	h.Del("Set-Cookie")
	h.Del("Set-Cookie2")
	for _, k := range []string{"Location", "Content-Location"} {
		if v := h.Get(k); v != "" {
			h.Set(k, p.rewriteURL(v))
		}
	}
	if h.Get("Cache-Control") == "" {
		// Patient data, on a page whose access rides on a cookie.
		h.Set("Cache-Control", "no-store")
	}
	if resp.Request.Method != http.MethodHead && isJSON(h.Get("Content-Type")) && resp.ContentLength != 0 {
		resp.Body = rewriteBundleLinks(resp.Body, p.rewriteURL)
		resp.ContentLength = -1
		h.Del("Content-Length")
	}
	return nil
}

// rewriteURL returns s with the upstream base replaced by the prefix, or s
// when it is not under the upstream base.
func (p *proxy) rewriteURL(s string) string {
	rest, ok := strings.CutPrefix(s, p.from)
	if !ok || rest != "" && rest[0] != '/' && rest[0] != '?' && rest[0] != '#' {
		return s
	}
	return p.to + strings.TrimPrefix(rest, "/")
}

// isJSON reports whether a Content-Type is JSON: application/json,
// application/fhir+json, or another +json type.
func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// fail answers a request the upstream round trip failed for.
func (p *proxy) fail(w http.ResponseWriter, req *http.Request, err error) {
	if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
		return // the browser went away
	}
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		err = ErrProxyBodyTooLarge
	case errors.Is(err, ErrReauthRequired), errors.Is(err, ErrTransient), errors.Is(err, ErrMisconfigured):
	default:
		p.r.cfg.Logger.WarnContext(req.Context(), "smartrefresh: proxy could not reach the FHIR server", "error", err)
		err = ErrProxyUpstream
	}
	p.cfg.ErrorHandler(w, req, err)
}

// writeProxyError is ProxyConfig's default ErrorHandler.
func writeProxyError(w http.ResponseWriter, req *http.Request, err error) {
	var pe *proxyError
	if errors.As(err, &pe) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(pe.status)
		json.NewEncoder(w).Encode(ErrorBody{pe.code, pe.description})
		return
	}
	if errors.Is(err, ErrTransient) || errors.Is(err, context.DeadlineExceeded) {
		// WriteError replaces it with the token endpoint's own hint.
		w.Header().Set("Retry-After", "1")
	}
	WriteError(w, req, err)
}

// sessionTransport is the proxy's transport: Client's, with the session of
// each request's own context.
type sessionTransport struct {
	r    *Refresher
	base http.RoundTripper
}

// RoundTrip sends one of ReverseProxy's outbound requests, which it made
// for this round trip alone and which the transport may therefore change.
func (t sessionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr := transport{r: t.r, session: req.Context(), base: t.base, owned: true}
	return tr.RoundTrip(req)
}
