package smarttest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
)

// NewBrowser returns an HTTP client that keeps cookies, as a browser does,
// for Login and for the requests a test makes as the logged-in user.
func NewBrowser() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &http.Client{Jar: jar}
}

// Login logs browser in to an app through the app's own launch route, as a
// user would: it requests launchURL (the app's /launch, with ?iss=…&launch=…
// for an EHR launch), follows the app's redirect to s's authorization
// endpoint, which approves at once, follows the redirect back to the app's
// callback, and checks that the login succeeded: the callback redirected
// on, having exchanged the authorization code, and kept the tokens (it did
// not revoke them), to a page that is not an error (no error parameter)
// nor the launch again. An app whose error handler answers a refused login
// with a redirect thus fails Login. It returns where the callback sent the
// browser, resolved against the callback URL.
//
// browser must keep cookies (NewBrowser, or any client with a Jar); its
// CheckRedirect is not used. The error says which step failed and quotes
// the start of that answer.
func (s *Server) Login(browser *http.Client, launchURL string) (string, error) {
	if browser == nil || browser.Jar == nil {
		return "", errors.New("smarttest: Login needs a client with a cookie jar (smarttest.NewBrowser)")
	}
	c := *browser
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// 1. The app's launch route redirects to the authorization endpoint.
	authz, err := step(&c, "the app's launch", launchURL)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(authz.String(), s.AuthorizeURL+"?") {
		return "", fmt.Errorf("smarttest: Login: the app's launch redirected to %s, not to this server's authorization endpoint %s",
			authz.Redacted(), s.AuthorizeURL)
	}
	// 2. The authorization endpoint approves and redirects to the callback.
	callback, err := step(&c, "the authorization endpoint", authz.String())
	if err != nil {
		return "", err
	}
	if q := callback.Query(); q.Has("error") {
		return "", fmt.Errorf("smarttest: Login: the authorization endpoint refused: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	// 3. The callback logs in and redirects into the app.
	landing, err := step(&c, "the app's callback", callback.String())
	if err != nil {
		return "", err
	}
	if why := s.refused(callback.Query().Get("code"), landing, launchURL); why != "" {
		return "", fmt.Errorf("smarttest: Login: the app's callback redirected to %s, but %s: the app refused the login",
			landing.Redacted(), why)
	}
	return landing.String(), nil
}

// refused says why a callback that redirected to landing did not log in
// with code, or "" when it did.
func (s *Server) refused(code string, landing *url.URL, launchURL string) string {
	s.mu.Lock()
	c := s.codes[code]
	exchanged := c != nil && c.grant != nil
	revoked := exchanged && c.grant.revoked
	s.mu.Unlock()
	switch {
	case !exchanged:
		return "it never exchanged the authorization code"
	case revoked:
		return "it revoked the tokens it got"
	case landing.Query().Has("error"):
		return "the redirect carries error=" + landing.Query().Get("error")
	}
	if l, err := url.Parse(launchURL); err == nil && l.Path == landing.Path && l.Host == landing.Host {
		return "it sent the browser back to the launch"
	}
	return ""
}

// step GETs u and returns where its redirect answer points.
func step(c *http.Client, what, u string) (*url.URL, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, fmt.Errorf("smarttest: Login: %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("smarttest: Login: %s answered %d, not a redirect: %s", what, resp.StatusCode,
			strings.Join(strings.Fields(string(body)), " "))
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("smarttest: Login: %s redirected without a valid Location: %w", what, err)
	}
	return loc, nil
}
