package core

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// proxyRequestHeaders are the only headers of the browser's request that
// reach the upstream (the transport adds Authorization, Content-Length
// and Accept-Encoding): what a FHIR request needs, nothing that forwards,
// reroutes, overrides the method or re-identifies the client. Not Range
// or If-Range: the token mask sees one answer at a time, and a page could
// read an echoed token a few bytes per answer.
var proxyRequestHeaders = []string{
	"Accept", "Accept-Language", "Content-Type", "Content-Encoding", "Prefer",
	"If-Match", "If-None-Match", "If-None-Exist", "If-Modified-Since", "If-Unmodified-Since",
	"X-Request-Id", "X-Correlation-Id",
}

// proxyResponseHeaders are the only headers of the upstream's answer that
// reach the browser: what a FHIR answer needs, nothing that acts on the
// app's origin (cookies, caching, HSTS, CORS, Clear-Site-Data, Alt-Svc,
// authentication prompts, links, refreshes).
var proxyResponseHeaders = []string{
	"Content-Type", "Content-Length", "Content-Language",
	"Etag", "Last-Modified", "Location", "Content-Location", "Retry-After",
	"X-Request-Id", "X-Correlation-Id", "X-Progress",
}

// rewrite makes the upstream request: the upstream's URL with the query
// byte for byte, and only the allowed headers of the browser's request.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	path, _ := p.upstreamPath(pr.In.URL) // checked in ServeHTTP
	out := pr.Out.URL
	out.Scheme, out.Host, out.User = p.upstream.Scheme, p.upstream.Host, nil
	out.Path, _ = url.PathUnescape(path)
	out.RawPath = path
	// ReverseProxy drops a query with ";" or a bad "%" escape; a search
	// must arrive as the page sent it, less the launch it named for the
	// proxy (LaunchParam: the app's, not the FHIR server's).
	out.RawQuery, out.ForceQuery = withoutLaunchParam(pr.In.URL.RawQuery), pr.In.URL.ForceQuery
	pr.Out.Host = ""
	in := pr.Out.Header // the browser's, without hop-by-hop headers
	h := make(http.Header, len(proxyRequestHeaders))
	for _, k := range proxyRequestHeaders {
		if v, ok := in[k]; ok {
			h[k] = v
		}
	}
	pr.Out.Header = h // LaunchHeader is not in the list: it stays here
	// The token is the one of the launch the request names (launches.go).
	if ctx := LaunchContext(pr.In); ctx != pr.In.Context() {
		pr.Out = pr.Out.WithContext(ctx)
	}
	if p.cfg.ForwardedHeaders {
		pr.SetXForwarded()
	}
}

// withoutLaunchParam returns the query q without the LaunchParam pairs
// that RequestLaunch reads (launchPair), every other byte as it was. The
// launch named, the proxy has used it; forwarded, a FHIR server that
// refuses unknown search parameters would fail the search, and the id
// would be in its logs and Bundle links.
func withoutLaunchParam(q string) string {
	if !strings.Contains(q, LaunchParam) && !strings.Contains(q, "%") {
		return q // the common case, as RequestLaunch's
	}
	pairs := strings.Split(q, "&")
	kept := pairs[:0]
	for _, p := range pairs {
		if _, ok := launchPair(p); !ok {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "&")
}

// errEncodedAnswer: the upstream sent a Content-Encoding the transport did
// not decode, so the proxy cannot check the body for the token.
var errEncodedAnswer = errors.New("smartrefresh: proxy: the FHIR server's answer has a Content-Encoding the proxy did not ask for")

// errUpgradeAnswer: the upstream switched protocols, which the proxy never
// asks for.
var errUpgradeAnswer = errors.New("smartrefresh: proxy: the FHIR server switched protocols")

// modifyResponse keeps only the allowed headers of the upstream's answer,
// with URLs under the upstream base rewritten to the proxy and none
// holding the token; types it; drops its trailers; and masks the token in
// its body, rewriting a Bundle's links.
func (p *proxy) modifyResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return errUpgradeAnswer
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return errEncodedAnswer
	}
	var forms *tokenForms // the token's, as an echo would write it
	if token := bearerToken(resp.Request); token != "" {
		forms = newTokenForms(token)
	}
	in := resp.Header
	h := make(http.Header, len(proxyResponseHeaders)+2)
	for _, k := range proxyResponseHeaders {
		for _, v := range in[k] {
			if forms != nil && forms.in(v) {
				continue
			}
			switch k {
			case "Location", "Content-Location":
				if v = p.rewriteLocation(v, resp.Request.URL); forms != nil && forms.in(v) {
					continue // the token, once rewriting decoded it
				}
			}
			h[k] = append(h[k], v)
		}
	}
	resp.Header = h
	resp.Trailer = nil
	p.typeAnswer(h)
	if resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	body := resp.Body
	if isJSON(h.Get("Content-Type")) && resp.ContentLength != 0 {
		var rewritten bool
		if body, rewritten = sniffAndRewrite(body, p.bodyURL, p.appendURL); rewritten {
			resp.ContentLength = -1
			h.Del("Content-Length")
		}
	}
	if forms != nil {
		body = newTokenMask(body, forms, resp.ContentLength) // same length: Content-Length holds
	}
	resp.Body = &noTrailers{ReadCloser: body, resp: resp}
	return nil
}

// bearerToken returns the access token req carried.
func bearerToken(req *http.Request) string {
	if req == nil {
		return ""
	}
	_, tok, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	return strings.TrimSpace(tok)
}

// typeAnswer makes sure a browser takes the answer for what it says it
// is, and for nothing it could render live on the app's origin: a missing
// or malformed Content-Type becomes application/octet-stream, and
// anything but JSON or plain text is an attachment.
func (p *proxy) typeAnswer(h http.Header) {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		h.Set("Content-Type", "application/octet-stream")
		mt = "application/octet-stream"
	}
	if !isJSON(mt) && mt != "text/plain" {
		h.Set("Content-Disposition", "attachment")
	}
}

// noTrailers drops the upstream's trailers: the transport fills
// resp.Trailer as the body's end is read, and ReverseProxy copies them to
// the browser after Close.
type noTrailers struct {
	io.ReadCloser
	resp *http.Response
}

func (b *noTrailers) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.resp.Trailer = nil
	}
	return n, err
}

func (b *noTrailers) Close() error {
	err := b.ReadCloser.Close()
	b.resp.Trailer = nil
	return err
}

// isJSON reports whether a Content-Type is JSON: application/json,
// application/fhir+json, or another +json type.
func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}
