package core

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// ErrorHandler returns an error handler for the middleware adapters that
// sends a browser to loginURL when the user must authorize again, and
// answers every other request with otherwise (WriteError when nil). It is
// the one rule of every adapter's login URL option: the login URL takes
// the browser navigations that need a new authorization, the app's error
// handler (or the default JSON) everything else, whatever order the
// options were given in.
//
// A request is redirected (303 See Other) only when all of these hold:
// the error matches ErrReauthRequired; the request is a GET or HEAD
// navigation (Sec-Fetch-Mode: navigate, or, from a browser that does not
// send Sec-Fetch-Mode, an Accept header naming text/html); and its path is
// not loginURL's path, so the login page itself can never loop. API calls
// (fetch, XHR, other methods) and transient or configuration errors go to
// otherwise.
//
// The redirect carries the page the user asked for (its path and query) as
// the return_to parameter of loginURL, which the Launcher's LaunchHandler
// honours: after the login the browser comes back to that page instead of
// LaunchConfig.AfterLogin. It is carried only when SafeReturnTo accepts it
// (a path on this site, at most 2 KiB) and loginURL is on this site
// (relative, or absolute with the request's host) and has no return_to of
// its own.
//
// loginURL is the app's login or launch page, absolute or relative to the
// app. ErrorHandler panics if it is not a valid http(s) or relative URL,
// since that is a programming error.
func ErrorHandler(loginURL string, otherwise func(http.ResponseWriter, *http.Request, error)) func(http.ResponseWriter, *http.Request, error) {
	u, err := url.Parse(loginURL)
	if err != nil || loginURL == "" || u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" || u.Scheme != "" && u.Host == "" {
		panic("smartrefresh: ErrorHandler needs an http(s) or relative login URL, got " + loginURL)
	}
	if otherwise == nil {
		otherwise = WriteError
	}
	return func(w http.ResponseWriter, req *http.Request, err error) {
		if errors.Is(err, ErrReauthRequired) && isNavigation(req) && !isLoginPage(req, u) {
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, req, withReturnTo(u, req), http.StatusSeeOther)
			return
		}
		otherwise(w, req, err)
	}
}

// isNavigation reports whether req is a browser loading a page, as opposed
// to a script calling an API.
func isNavigation(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if mode := req.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	for _, v := range req.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/html") {
			return true
		}
	}
	return false
}

// isLoginPage reports whether req is for the page login points to
// (resolved against req's URL, as the redirect would be), ignoring trailing
// slashes.
func isLoginPage(req *http.Request, login *url.URL) bool {
	return cleanPath(req.URL.ResolveReference(login).Path) == cleanPath(req.URL.Path)
}

// cleanPath returns p without trailing slashes, "/" for the root.
func cleanPath(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/"
	}
	return p
}

// withReturnTo returns login with req's path and query as its return_to
// parameter, or login as it is when that page may not be carried (see
// ErrorHandler).
func withReturnTo(login *url.URL, req *http.Request) string {
	page := req.URL.RequestURI()
	if !SafeReturnTo(page) || login.Host != "" && !strings.EqualFold(login.Host, req.Host) {
		return login.String()
	}
	q := login.Query()
	if q.Has("return_to") {
		return login.String()
	}
	q.Set("return_to", page)
	to := *login
	to.RawQuery = q.Encode()
	return to.String()
}
