package core

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// LaunchHeader and LaunchParam name the launch a request is for: the
// header for a page's fetch calls (and the FHIR proxy), the query
// parameter for navigations and links. CallbackHandler adds LaunchParam to
// the page it sends the browser to after a login.
const (
	LaunchHeader = "X-SMART-Launch"
	LaunchParam  = "smart_launch"
)

// launchHeaderKey is LaunchHeader in canonical form, which http.Header
// looks up without allocating.
const launchHeaderKey = "X-Smart-Launch"

// maxLaunchID bounds a launch id read from a request; longer ones name no
// launch of this package and are answered ErrLaunchGone.
const maxLaunchID = 128

type launchKey struct{}

// RequestLaunch returns the launch id req names: its X-SMART-Launch header,
// or else its smart_launch query parameter; "" when it names none.
func RequestLaunch(req *http.Request) string {
	if v := req.Header[launchHeaderKey]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	q := req.URL.RawQuery
	if !strings.Contains(q, LaunchParam) && !strings.Contains(q, "%") {
		return "" // the common case, without parsing the query
	}
	for pair := range strings.SplitSeq(q, "&") {
		if id, ok := launchPair(pair); ok {
			return id
		}
	}
	return ""
}

// launchPair reports whether pair, one "&"-separated part of a raw query,
// is a LaunchParam parameter as url.ParseQuery reads it (the key may be
// percent-encoded; a pair with ";" or a bad escape is skipped), and its
// value. RequestLaunch reads the first; the FHIR proxy strips them all.
func launchPair(pair string) (string, bool) {
	if strings.Contains(pair, ";") {
		return "", false
	}
	k, v, _ := strings.Cut(pair, "=")
	if key, err := url.QueryUnescape(k); err != nil || key != LaunchParam {
		return "", false
	}
	id, err := url.QueryUnescape(v)
	return id, err == nil
}

// WithLaunch returns a copy of ctx that names the launch id for Token,
// Client, Info, FHIRProxy and LogoutLaunch. With id "" it returns ctx: the
// session's most recent launch is used.
func WithLaunch(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, launchKey{}, id)
}

// LaunchContext returns the context of req naming the launch req names
// (RequestLaunch): what an app's own handler passes to Token, Client or
// Info when no middleware attached a token (the adapters' contexts name
// their launch already).
func LaunchContext(req *http.Request) context.Context {
	return WithLaunch(req.Context(), RequestLaunch(req))
}

// launchOf returns the launch id ctx names, "" for none: WithLaunch's, or
// else the launch whose token AttachRequest attached.
func launchOf(ctx context.Context) string {
	if id, ok := ctx.Value(launchKey{}).(string); ok {
		return id
	}
	if a, ok := ctx.Value(tokenKey{}).(*attachment); ok {
		return a.launch
	}
	return ""
}
