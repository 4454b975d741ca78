package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
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
	DefaultProxyTimeout         = time.Minute
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
	// to the upstream, with the proxy's own values. The browser's own
	// X-Forwarded-* and Forwarded headers are never passed on.
	ForwardedHeaders bool
	// Timeout bounds each proxied call, from the token check to the last
	// byte of the answer (Config.HTTPClient.Timeout when zero, and
	// DefaultProxyTimeout when that is zero too). A call whose answer has
	// not begun by then gets 504; one whose answer was streaming is cut.
	Timeout time.Duration
	// ErrorHandler answers a request the proxy could not forward (nil:
	// WriteError, with the ErrProxy errors' own statuses). err matches
	// ErrReauthRequired when the user must launch again: the page should
	// then navigate to the app's launch or login page; and
	// ErrTokenRejected when the FHIR server refuses the tokens the token
	// endpoint issues (403 token_rejected by default). Its answer gets the
	// same safety headers as every proxied answer.
	ErrorHandler func(http.ResponseWriter, *http.Request, error)
}

// FHIRProxy returns a handler that forwards the browser's FHIR requests to
// cfg.Upstream with the session's access token: a backend-for-frontend, so
// that the browser never holds the token. Mount it under cfg.Prefix behind
// the session manager's LoadAndSave, as any handler that uses the session.
//
// Its security model, what passes each way:
//
//	                 the browser sends           reaches the upstream
//	method           any                         cfg.Methods only (else 405); POST to
//	                                             the base (a batch or transaction,
//	                                             whose entries carry their own methods)
//	                                             only when Methods has all five defaults
//	path             anything under Prefix       the same segments under Upstream's path;
//	                                             400 for any segment a server could take
//	                                             for . or .. (;params, trailing dots or
//	                                             spaces, any number of %-decodings, "\"),
//	                                             an encoded / or \, control characters
//	                                             or non-ASCII
//	query            anything                    byte for byte, less smart_launch pairs
//	                                             (LaunchParam: it names the launch)
//	headers          any                         only Accept, Accept-Language,
//	                                             Content-Type, Content-Encoding, Prefer,
//	                                             If-Match, If-None-Match, If-None-Exist,
//	                                             If-Modified-Since, If-Unmodified-Since,
//	                                             X-Request-Id, X-Correlation-Id (not
//	                                             Range: see below); plus Authorization
//	                                             with the session's token, and
//	                                             X-Forwarded-For/-Host/-Proto when
//	                                             ForwardedHeaders (the proxy's values)
//	Upgrade          websocket, h2c              refused (400), nothing forwarded
//	body             up to MaxBodyBytes          as sent; none without a token (401
//	                                             before a byte of it is read)
//
//	                 the upstream answers        comes back to the browser
//	1xx              Early Hints and others      nothing (not forwarded)
//	headers          any                         only Content-Type, Content-Length,
//	                                             Content-Language, ETag, Last-Modified,
//	                                             Location and Content-Location (under
//	                                             the prefix, see below), Retry-After,
//	                                             X-Request-Id, X-Correlation-Id,
//	                                             X-Progress; none holding the token,
//	                                             also encoded (see below)
//	                 (always set)                Cache-Control: no-store,
//	                                             X-Content-Type-Options: nosniff,
//	                                             Content-Security-Policy: sandbox;
//	                                             default-src 'none'; frame-ancestors
//	                                             'none', Cross-Origin-Resource-Policy:
//	                                             same-origin, on every answer, the
//	                                             proxy's own errors too
//	content type     JSON, text/plain            as it is, inline
//	                 anything else, or none      as an attachment (Content-Disposition),
//	                                             none as application/octet-stream
//	body             any                         the token masked with "*", also
//	                                             encoded (see below); in a JSON
//	                                             Bundle, link URLs rewritten
//	trailers         any                         none
//	Content-Encoding other than identity         502 (the body could not be checked)
//	no answer        within Timeout              504
//
// Every request must carry ProxyCSRFHeader: 1, or it is refused with 403
// and nothing is forwarded. The browser's Cookie and Authorization never
// reach the upstream, and the upstream's Set-Cookie never reaches the
// browser.
//
// The token is the one of the launch the request names in LaunchHeader
// (the session's most recent launch when it names none; ErrLaunchGone,
// 401, when the session no longer holds it). It is refreshed when it is
// due, and, when the upstream answers
// 401, refreshed once (shared, like every refresh) and the request sent
// again if its body was kept (see ProxyConfig.ReplayBodyBytes). A refresh
// that failed transiently is answered 503 with Retry-After; one that needs
// the user to launch again, 401 with a JSON body; a FHIR server that
// rejects the token a refresh just obtained, 403 token_rejected (see
// ErrTokenRejected), from its first such 401 on.
//
// Responses stream. In FHIR JSON Bundles, the URLs of link[].url,
// entry[].fullUrl and entry[].response.location under the upstream base
// (relative ones are taken relative to the base) are rewritten to the
// proxy's prefix, and so are Location and Content-Location headers
// (relative ones are resolved against the request), so that a page
// following a Bundle's next link stays on the proxy. A URL is rewritten
// only when the result stays under the prefix by the path rule above;
// otherwise it is left pointing at the upstream, absolute. Nothing else in
// a body changes, byte for byte.
//
// The token is masked wherever it comes back: in a body each of its bytes
// is replaced with "*" (the length stays, and so does Content-Length), and
// a header value holding it is dropped. Masked is the token as it is and
// as encoders write it: each character as itself, as %XX or (ASCII) \u00XX
// with hex digits in either case, or with its JSON short escape (\/, \",
// \\, \b, \f, \n, \r, \t), a space also as "+", any mix of these along the
// token; and, for a token of 8 bytes or more, its base64, standard or URL
// alphabet, padded or not, at each of the three alignments it can have in
// a longer text (so "Bearer <token>" and "user:<token>" encoded too), less
// the character at either end that also holds bits of the bytes around it
// (one at most), its characters written in the same ways. Not masked: the
// token encoded any other way (twice over, hex, HTML character references,
// base64 with line breaks, compressed). Range is not forwarded, so every
// answer is whole and the token cannot be read from it in pieces. A
// hostile upstream holds the token anyway and can always write it some way
// no mask knows; the mask keeps an upstream that echoes it, a debug page
// or a careless encoder, from handing it to the page.
//
// The proxy logs to Config.Logger. The error is a *ConfigError when cfg is
// unusable.
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
		ErrorLog:       slog.NewLogLogger(r.cfg.Logger.Handler(), slog.LevelWarn),
		BufferPool:     copyBuffers{},
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
	// batch: POST to the base is allowed, since Methods has every method
	// a batch or transaction entry could carry.
	batch bool
	rp    *httputil.ReverseProxy
	// bodyURL and appendURL are rewriteBodyURL and appendBodyURL, made
	// once, not for every answer.
	bodyURL   func(string) string
	appendURL appendLinkFunc
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
	p.batch = true
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		p.batch = p.batch && slices.Contains(c.Methods, m)
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultProxyMaxBodyBytes
	}
	if c.ReplayBodyBytes <= 0 {
		c.ReplayBodyBytes = DefaultProxyReplayBodyBytes
	}
	c.ReplayBodyBytes = min(c.ReplayBodyBytes, c.MaxBodyBytes)
	if c.Timeout <= 0 {
		c.Timeout = p.r.cfg.HTTPClient.Timeout
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultProxyTimeout
	}
	if c.ErrorHandler == nil {
		c.ErrorHandler = writeProxyError
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	p.upstream = u
	p.base = u.EscapedPath()
	p.from = strings.TrimSuffix(c.Upstream, "/")
	p.to = c.Prefix
	p.bodyURL, p.appendURL = p.rewriteBodyURL, p.appendBodyURL
	return nil
}

// ServeHTTP checks the request, keeps a small body for a replay, and
// forwards it within the timeout. Every answer, the errors too, goes out
// through a safeWriter.
func (p *proxy) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	w := &safeWriter{ResponseWriter: rw}
	if req.Header.Get(csrfKey) != "1" {
		p.cfg.ErrorHandler(w, req, ErrProxyCSRF)
		return
	}
	if !slices.Contains(p.cfg.Methods, req.Method) {
		w.Header().Set("Allow", strings.Join(p.cfg.Methods, ", "))
		p.cfg.ErrorHandler(w, req, ErrProxyMethod)
		return
	}
	if req.Header.Get("Upgrade") != "" || headerHasToken(req.Header, "Connection", "upgrade") {
		p.cfg.ErrorHandler(w, req, ErrProxyUpgrade)
		return
	}
	path, err := p.upstreamPath(req.URL)
	if err != nil {
		p.cfg.ErrorHandler(w, req, err)
		return
	}
	if req.Method == http.MethodPost && path == p.base && !p.batch {
		w.Header().Set("Allow", strings.Join(slices.DeleteFunc(slices.Clone(p.cfg.Methods), func(m string) bool { return m == http.MethodPost }), ", "))
		p.cfg.ErrorHandler(w, req, ErrProxyMethod)
		return
	}
	ctx, cancel := context.WithTimeoutCause(req.Context(), p.cfg.Timeout, ErrProxyTimeout)
	defer cancel()
	req = req.WithContext(ctx)
	if hasBody(req) {
		// No byte of a body is read for a session that has no token.
		if _, err := p.r.Token(ctx); err != nil {
			p.fail(w, req, err)
			return
		}
		if err := p.bufferBody(w, req); err != nil {
			p.fail(w, req, err)
			return
		}
	}
	p.rp.ServeHTTP(w, req)
}

func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
}

// headerHasToken reports whether one of h's key headers lists token
// (case-insensitively) in its comma-separated values.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Errors of a request the proxy refused, each matching ErrProxyRefused,
// and of an upstream that failed (ErrProxyUpstream, ErrProxyTimeout).
var (
	// ErrProxyRefused is matched by every request the proxy refused to
	// forward because of the request itself.
	ErrProxyRefused = errors.New("smartrefresh: proxy refused the request")
	// ErrProxyCSRF: the request lacks ProxyCSRFHeader: 1 (403).
	ErrProxyCSRF = &proxyError{http.StatusForbidden, "csrf", "the request lacks the " + ProxyCSRFHeader + ": 1 header", true}
	// ErrProxyMethod: the method is not in ProxyConfig.Methods, or it is a
	// POST of a batch or transaction to the base while Methods leaves out
	// a method its entries could carry (405).
	ErrProxyMethod = &proxyError{http.StatusMethodNotAllowed, "method_not_allowed", "the method is not allowed", true}
	// ErrProxyPath: the path is not under the prefix, or a server could
	// resolve it outside the upstream base (400).
	ErrProxyPath = &proxyError{http.StatusBadRequest, "invalid_path", "the path is not a FHIR path under the proxy", true}
	// ErrProxyUpgrade: the request asks to upgrade the connection
	// (WebSocket, h2c), which the proxy never does (400).
	ErrProxyUpgrade = &proxyError{http.StatusBadRequest, "upgrade_refused", "the proxy does not upgrade connections", true}
	// ErrProxyBodyTooLarge: the body is over ProxyConfig.MaxBodyBytes (413).
	ErrProxyBodyTooLarge = &proxyError{http.StatusRequestEntityTooLarge, "body_too_large", "the request body is too large", true}
	// ErrProxyUpstream: the upstream could not be reached, its answer was
	// cut, or it was one the proxy does not pass on (502).
	ErrProxyUpstream = &proxyError{http.StatusBadGateway, "bad_gateway", "the FHIR server could not be reached", false}
	// ErrProxyTimeout: the upstream did not answer within
	// ProxyConfig.Timeout (504).
	ErrProxyTimeout = &proxyError{http.StatusGatewayTimeout, "gateway_timeout", "the FHIR server did not answer in time", false}
)

// proxyError is one of the ErrProxy errors: its status and JSON error.
type proxyError struct {
	status      int
	code        string
	description string
	refused     bool // the request itself was refused
}

func (e *proxyError) Error() string        { return "smartrefresh: proxy: " + e.description }
func (e *proxyError) Is(target error) bool { return target == ErrProxyRefused && e.refused }

// bufferBody bounds req's body by MaxBodyBytes and, when it fits in
// ReplayBodyBytes, reads it into memory with GetBody set, so that the
// transport can send it again after a 401.
func (p *proxy) bufferBody(w http.ResponseWriter, req *http.Request) error {
	if req.ContentLength > p.cfg.MaxBodyBytes {
		return ErrProxyBodyTooLarge
	}
	req.Body = http.MaxBytesReader(w, req.Body, p.cfg.MaxBodyBytes)
	if req.ContentLength > p.cfg.ReplayBodyBytes {
		return nil // streamed; not replayable
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, p.cfg.ReplayBodyBytes+1))
	if err != nil {
		return err
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

// fail answers a request that could not be forwarded, or whose upstream
// round trip failed.
func (p *proxy) fail(w http.ResponseWriter, req *http.Request, err error) {
	ctx := req.Context()
	if context.Cause(ctx) == ErrProxyTimeout {
		err = ErrProxyTimeout
	} else if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // the browser went away
	}
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		err = ErrProxyBodyTooLarge
	case err == ErrProxyTimeout:
		p.r.cfg.Logger.WarnContext(ctx, "smartrefresh: proxy: the FHIR server did not answer in time", "timeout", p.cfg.Timeout)
	case errors.Is(err, ErrReauthRequired), errors.Is(err, ErrTransient), errors.Is(err, ErrMisconfigured),
		errors.Is(err, ErrTokenRejected), errors.Is(err, ErrProxyRefused):
	default:
		p.r.cfg.Logger.WarnContext(ctx, "smartrefresh: proxy could not reach the FHIR server", "error", err)
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
//
// A 401 that Client's transport passes on was the answer to a replay (or to
// a body that could not be replayed). When its token is one a 401-triggered
// refresh obtained moments ago, the FHIR server rejects fresh tokens: the
// page gets ErrTokenRejected from this first time on, not a 401 that reads
// as "the session ended".
func (t sessionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr := transport{r: t.r, session: req.Context(), base: t.base, owned: true}
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if since, ok := t.r.probation.check(bearerToken(resp.Request), t.r.cfg.Now()); ok {
		code := bearerErrorCode(resp.Header.Get("WWW-Authenticate"))
		drain(resp)
		return nil, &TokenRejectedError{Code: code, CoolDown: TokenRejectedCoolDown, Since: since}
	}
	return resp, nil
}

// copyBuffers are ReverseProxy's buffers for copying answers: 256 KiB, so
// that a large answer (a Bundle being rewritten, which is flushed after
// every write) goes out in few writes.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }
