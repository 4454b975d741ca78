package core

import (
	"net/url"
	"strings"
)

// rewriteURL returns s with the upstream base replaced by the prefix, or s
// when it is not under the upstream base, or when the result could resolve
// outside the prefix (a dot segment in any encoding, an empty first
// segment that would make "//host", a "\"): such a URL is left pointing at
// the upstream, never turned into a link on the app's origin.
func (p *proxy) rewriteURL(s string) string {
	rest, ok := strings.CutPrefix(s, p.from)
	if !ok || rest != "" && rest[0] != '/' && rest[0] != '?' && rest[0] != '#' {
		return s
	}
	path, tail := rest, ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		path, tail = rest[:i], rest[i:]
	}
	path = strings.TrimPrefix(path, "/")
	if strings.HasPrefix(path, "/") || !safeProxyPath(path) {
		return s
	}
	return p.to + path + tail
}

// rewriteLocation rewrites a Location or Content-Location header: a
// relative one is first resolved against the upstream request's URL, as
// the browser would have resolved it there.
func (p *proxy) rewriteLocation(v string, req *url.URL) string {
	ref, err := url.Parse(v)
	if err != nil {
		return v
	}
	if !ref.IsAbs() {
		v = req.ResolveReference(ref).String()
	}
	return p.rewriteURL(v)
}

// rewriteBodyURL rewrites a URL of a Bundle (link[].url, entry[].fullUrl,
// entry[].response.location): a relative one is relative to the FHIR base,
// as FHIR's references are.
func (p *proxy) rewriteBodyURL(v string) string {
	if strings.HasPrefix(v, p.from) {
		return p.rewriteURL(v) // the common case, without parsing
	}
	ref, err := url.Parse(v)
	if err != nil || ref.IsAbs() || ref.Host != "" || strings.HasPrefix(v, "/") || v == "" {
		return p.rewriteURL(v)
	}
	return p.rewriteURL(p.from + "/" + v)
}

// appendBodyURL is rewriteBodyURL's fast path (an appendLinkFunc), for
// the links of nearly every Bundle: the upstream base, "/", a plain path
// (see plainPath) not starting with "/", and a query or fragment that
// JSON writes as it is, all without an escape in the JSON text. Such a
// link is rewritten as rewriteURL would, without a string of its own and
// without decoding; any other link goes to rewriteBodyURL.
func (p *proxy) appendBodyURL(out, raw []byte) ([]byte, bool) {
	n := len(p.from)
	if len(raw) <= n || raw[n] != '/' || string(raw[:n]) != p.from ||
		strings.IndexByte(p.from, '\\') >= 0 || !jsonPlain(p.to) {
		return out, false
	}
	rest := raw[n+1:] // the path, and the query or fragment from end
	end, plain := plainPathLen(rest)
	if !plain || len(rest) > 0 && rest[0] == '/' || !jsonPlain(rest[end:]) {
		return out, false
	}
	out = append(out, '"')
	out = append(out, p.to...)
	out = append(out, rest...)
	return append(out, '"'), true
}

// jsonPlain reports whether JSON text writes s as it is: s has none of
// the bytes appendJSONString escapes.
func jsonPlain[S string | []byte](s S) bool {
	for i := range len(s) {
		if jsonEscaped[s[i]] {
			return false
		}
	}
	return true
}
