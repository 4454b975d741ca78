package core

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// launchCSP is the Content-Security-Policy of the launch's and the
// callback's answers: their pages load nothing and run nothing; only
// frame-ancestors varies (framePolicy).
const launchCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors "

// setLaunchHeaders sets the security headers of the launch's and the
// callback's own answers, redirects and error pages alike: a CSP under
// which the page loads and runs nothing and may be framed only by
// frameAncestors, and Referrer-Policy no-referrer, since the callback's URL
// holds the authorization code and state. The pages of an app's own
// LaunchConfig.ErrorHandler are the app's to secure: they get none of it.
func setLaunchHeaders(h http.Header, frameAncestors string) {
	h.Set("Content-Security-Policy", launchCSP+frameAncestors)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// frameAncestors returns the frame-ancestors sources of the launch pages:
// the app itself and the origins of LaunchConfig.Issuers, the EHRs that may
// launch the app in an iframe.
func frameAncestors(issuers []string) string {
	srcs := []string{"'self'"}
	for _, iss := range issuers {
		if u, err := url.Parse(iss); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			srcs = append(srcs, u.Scheme+"://"+u.Host)
		}
	}
	return strings.Join(srcs, " ")
}

// boundAnonymousSession keeps a session that holds no token from living the
// session manager's whole Lifetime because of a launch: an anonymous GET
// of the launch route would otherwise create a day-long session for anyone
// who asks. Such a session lives twice StateTTL (as long as its launch may
// be completed, or told it came too late); the login's Save renews it with
// the full Lifetime. A session's deadline is never shortened.
func (l *Launcher) boundAnonymousSession(ctx context.Context) {
	sm := l.r.cfg.Sessions
	if v, _ := l.r.get(ctx); v != nil {
		return // logged in
	}
	until := time.Now().Add(2 * l.cfg.StateTTL) // scs's own clock
	if sm.Token(ctx) == "" || sm.Deadline(ctx).Before(until) {
		sm.SetDeadline(ctx, until)
	}
}
