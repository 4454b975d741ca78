package core

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// DestinationError is a request that Client refused to send because the
// access token must not go to its URL: plain http to a host that is not
// loopback, or a URL outside Config.FHIRBaseURLs. Nothing was sent. It
// matches ErrMisconfigured.
type DestinationError struct {
	// URL is the request's URL without its query.
	URL string
	// Reason says which rule the URL broke.
	Reason string
}

func (e *DestinationError) Error() string {
	return "smartrefresh: not sending the access token to " + e.URL + ": " + e.Reason
}

// Is makes a DestinationError match ErrMisconfigured.
func (e *DestinationError) Is(target error) bool { return target == ErrMisconfigured }

// baseURL is one of Config.FHIRBaseURLs, parsed: a request URL is under it
// when it has the same scheme, host and port, and its path is the base
// path or continues it after a slash.
type baseURL struct {
	scheme, host string // lower case; host with its port, default port removed
	path         string // escaped, without a trailing slash
}

func parseBaseURLs(raw []string) ([]baseURL, error) {
	var out []baseURL
	for i, s := range raw {
		field := "FHIRBaseURLs[" + strconv.Itoa(i) + "]"
		if err := checkEndpoint(s); err != nil {
			return nil, &ConfigError{Field: field, Reason: err.Error()}
		}
		u, _ := url.Parse(s)
		if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			return nil, &ConfigError{Field: field, Reason: "must not have a query or fragment"}
		}
		if hasDotSegment(u) {
			return nil, &ConfigError{Field: field, Reason: "must not contain . or .. path segments (in any encoding, or with \\ as separator) or control characters"}
		}
		out = append(out, baseURL{
			scheme: strings.ToLower(u.Scheme),
			host:   canonicalHost(u),
			path:   strings.TrimSuffix(u.EscapedPath(), "/"),
		})
	}
	return out, nil
}

// contains reports whether u is under b.
func (b baseURL) contains(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, b.scheme) || canonicalHost(u) != b.host {
		return false
	}
	p := u.EscapedPath()
	return p == b.path || strings.HasPrefix(p, b.path+"/")
}

// canonicalHost returns u's host in lower case, without the scheme's
// default port.
func canonicalHost(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" || port == "443" && strings.EqualFold(u.Scheme, "https") || port == "80" && strings.EqualFold(u.Scheme, "http") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return host
}

// maxUnescapes bounds how many layers of percent-encoding hasDotSegment
// peels off: servers that decode twice exist, and a path encoded more often
// than this is refused outright.
const maxUnescapes = 4

// hasDotSegment reports whether u's path could be resolved by some server
// to a place other than where it seems to be (see unsafePath).
func hasDotSegment(u *url.URL) bool { return unsafePath(u.EscapedPath()) }

// unsafePath reports whether the escaped path p could be resolved by some
// server to a place other than where it seems to be, outside a base the
// path seems to be under: a "." or ".." segment in plain, percent-encoded
// or multiply percent-encoded form, with "\" as well as "/" as separator
// (IIS and some Java stacks treat "\" as "/"), with a ";" parameter after
// it (Tomcat resolves "..;/" as "../"), with the trailing dots or spaces
// Windows strips ("...", ".. "), written with look-alike dots that Unicode
// normalization folds to ".", or a path with control characters. It is the
// one rule of both Client's destinations and the FHIR proxy's paths.
func unsafePath(p string) bool {
	for range maxUnescapes + 1 {
		if dotSegment(p) {
			return true
		}
		next, err := url.PathUnescape(p)
		if err != nil {
			// A stray "%" in a decoded layer: judge what is there.
			return dotSegment(strings.ReplaceAll(p, "%", ""))
		}
		if next == p {
			return false
		}
		p = next
	}
	return true // still encoded after maxUnescapes layers
}

// dots are the characters a server may take for "." in a path segment:
// the full stop, and the look-alikes NFKC normalization folds to it
// (fullwidth, small and one-dot leader).
const dots = ".\uFF0E\uFE52\u2024"

// dotSegment reports whether the path p, taken literally, has a segment a
// server could resolve as "." or "..", or a control character.
func dotSegment(p string) bool {
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return true
	}
	for seg := range strings.FieldsFuncSeq(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		seg, _, _ = strings.Cut(seg, ";")
		if strings.ContainsAny(seg, dots) && strings.Trim(seg, dots+" ") == "" {
			return true
		}
	}
	return false
}

// tokenAllowed returns nil if the access token may be sent to u: over https
// (or plain http to loopback), and, when Config.FHIRBaseURLs is set, only
// under one of them.
func (r *Refresher) tokenAllowed(u *url.URL) error {
	refuse := func(reason string) error {
		v := *u
		v.RawQuery, v.ForceQuery, v.Fragment, v.User = "", false, "", nil
		return &DestinationError{URL: v.String(), Reason: reason}
	}
	switch {
	case strings.EqualFold(u.Scheme, "https"):
	case strings.EqualFold(u.Scheme, "http") && isLoopback(u.Hostname()):
	case strings.EqualFold(u.Scheme, "http"):
		return refuse("plain http (the token is sent over https only, or to loopback)")
	default:
		return refuse("not an http or https URL")
	}
	if len(r.bases) == 0 {
		return nil
	}
	if hasDotSegment(u) {
		return refuse("the path has a segment a server could resolve as . or .. (in some encoding, or with \\ as separator), or control characters")
	}
	for _, b := range r.bases {
		if b.contains(u) {
			return nil
		}
	}
	return refuse("not under any of Config.FHIRBaseURLs")
}

// attachToken decides what Client does with req: attach the token (true),
// send req without it (false), or refuse to send it (an error).
//
// A request the app made must be allowed by tokenAllowed, or it is refused.
// A redirect the server asked for (req.Response is set) gets the token only
// when tokenAllowed allows it and it stays on the origin (scheme, host and
// port) of the app's request; otherwise it goes out without the token, as
// net/http sends a cross-domain redirect without the Authorization header.
func (r *Refresher) attachToken(req *http.Request) (bool, error) {
	if req.Response == nil {
		if err := r.tokenAllowed(req.URL); err != nil {
			return false, err
		}
		return true, r.hostAllowed(req)
	}
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	sameOrigin := strings.EqualFold(req.URL.Scheme, first.URL.Scheme) && canonicalHost(req.URL) == canonicalHost(first.URL)
	return sameOrigin && r.tokenAllowed(req.URL) == nil && r.hostAllowed(req) == nil, nil
}

// hostAllowed returns nil unless Config.FHIRBaseURLs is set and req.Host
// names another host than req.URL: the request would go to the URL's
// server, but a front end that routes by Host would hand it, and the
// token, to that other host.
func (r *Refresher) hostAllowed(req *http.Request) error {
	if len(r.bases) == 0 || req.Host == "" {
		return nil
	}
	if canonicalHost(&url.URL{Scheme: req.URL.Scheme, Host: req.Host}) == canonicalHost(req.URL) {
		return nil
	}
	v := *req.URL
	v.RawQuery, v.ForceQuery, v.Fragment, v.User = "", false, "", nil
	return &DestinationError{URL: v.String(), Reason: "the request's Host " + strconv.Quote(limit(req.Host, 64)) + " is not its URL's host"}
}
