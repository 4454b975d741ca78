package core

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Default values of the optional LaunchConfig fields.
const (
	DefaultAfterLogin         = "/"
	DefaultLaunchStateTTL     = 10 * time.Minute
	DefaultMaxPendingLaunches = 8
)

// LaunchConfig configures a Launcher: SMART App Launch (EHR and
// standalone) in front of a Refresher. RedirectURL, Scope and FHIRBaseURL
// are required.
type LaunchConfig struct {
	// RedirectURL is the app's callback URL, where CallbackHandler is
	// mounted, exactly as registered at the authorization server. It must
	// use https, except on a loopback address.
	RedirectURL string
	// Scope is the scope the app asks for, separated by spaces, for
	// example "launch openid fhirUser offline_access patient/*.rs".
	// With openid the callback validates the id_token and the session gets
	// the user's fhirUser (SessionInfo.FHIRUser).
	Scope string
	// FHIRBaseURL is the FHIR server of a standalone launch (GET /launch
	// without iss), and the aud of its authorization request.
	FHIRBaseURL string
	// Issuers are the iss values an EHR launch (GET /launch?iss=…&launch=…)
	// may name, compared as exact strings; the launch of any other iss is
	// answered 400 and redirected nowhere. Default: FHIRBaseURL only. Every
	// issuer must use the Refresher's token endpoint: one Refresher keeps
	// the tokens of one authorization server.
	Issuers []string
	// AuthorizeURL is the authorization endpoint. When empty it is read
	// from the issuer's .well-known/smart-configuration (Discover), which
	// must then list S256 in code_challenge_methods_supported (see
	// AllowWithoutS256) and name the Refresher's TokenURL as its
	// token_endpoint.
	AuthorizeURL string
	// AfterLogin is where the callback sends the browser after a login
	// that asked for no return_to: a path on this site (default "/").
	AfterLogin string
	// StateTTL is how long a launch may take, from /launch to the callback
	// (DefaultLaunchStateTTL when zero).
	StateTTL time.Duration
	// MaxPendingLaunches is how many launches one session may have under
	// way at once, in several tabs (DefaultMaxPendingLaunches when zero);
	// beyond it the oldest is forgotten.
	MaxPendingLaunches int
	// AllowWithoutS256 accepts a discovered configuration whose
	// code_challenge_methods_supported lacks S256 (or is missing). PKCE
	// with S256 is sent all the same.
	AllowWithoutS256 bool
	// Discoverer reads the issuers' SMART configurations (a Discoverer
	// with the Refresher's HTTPClient when nil).
	Discoverer *Discoverer
	// ErrorHandler, when set, answers the launch and callback errors
	// instead of the default page (HTML for browsers, JSON for API
	// clients).
	ErrorHandler func(http.ResponseWriter, *http.Request, *LaunchError)
}

// LaunchConfigError reports a LaunchConfig field that NewLauncher
// rejected. It matches ErrMisconfigured.
type LaunchConfigError struct {
	Field  string
	Reason string
}

func (e *LaunchConfigError) Error() string {
	return "smartrefresh: LaunchConfig." + e.Field + " " + e.Reason
}

// Is makes a LaunchConfigError match ErrMisconfigured.
func (e *LaunchConfigError) Is(target error) bool { return target == ErrMisconfigured }

// A Launcher runs SMART App Launch for a Refresher: LaunchHandler sends the
// browser to the authorization server, CallbackHandler exchanges the code
// (with the Refresher's client authentication, never twice) and saves the
// token in the session. It is safe for concurrent use.
type Launcher struct {
	r       *Refresher
	cfg     LaunchConfig
	disc    *Discoverer
	openid  bool
	pending pendingStore
	used    usedStates
	ids     idTokenVerifier
}

// NewLauncher returns a Launcher that saves its logins in r, or a
// *LaunchConfigError naming the first field of cfg that is wrong.
func NewLauncher(r *Refresher, cfg LaunchConfig) (*Launcher, error) {
	if r == nil {
		return nil, &LaunchConfigError{Field: "Refresher", Reason: "is nil"}
	}
	bad := func(field, reason string) error { return &LaunchConfigError{Field: field, Reason: reason} }
	switch {
	case cfg.RedirectURL == "":
		return nil, bad("RedirectURL", "is required (the app's callback URL, as registered)")
	case strings.TrimSpace(cfg.Scope) == "":
		return nil, bad("Scope", "is required")
	case cfg.FHIRBaseURL == "":
		return nil, bad("FHIRBaseURL", "is required")
	case cfg.StateTTL < 0:
		return nil, bad("StateTTL", "must not be negative")
	case cfg.MaxPendingLaunches < 0:
		return nil, bad("MaxPendingLaunches", "must not be negative")
	}
	if err := checkEndpoint(cfg.RedirectURL); err != nil {
		return nil, bad("RedirectURL", err.Error())
	}
	if strings.Contains(cfg.RedirectURL, "#") {
		return nil, bad("RedirectURL", "must not have a fragment")
	}
	if cfg.AuthorizeURL != "" {
		if err := checkEndpoint(cfg.AuthorizeURL); err != nil {
			return nil, bad("AuthorizeURL", err.Error())
		}
	}
	if len(cfg.Issuers) == 0 {
		cfg.Issuers = []string{cfg.FHIRBaseURL}
	} else {
		cfg.Issuers = slices.Clone(cfg.Issuers)
	}
	for _, base := range append([]string{cfg.FHIRBaseURL}, cfg.Issuers...) {
		field := "Issuers"
		if base == cfg.FHIRBaseURL {
			field = "FHIRBaseURL"
		}
		if err := checkEndpoint(base); err != nil {
			return nil, bad(field, base+" "+err.Error())
		}
		u, _ := url.Parse(base)
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, bad(field, base+" must not have a query or fragment")
		}
		if err := r.tokenAllowed(u); err != nil {
			return nil, bad(field, base+" is not among the Refresher's FHIRBaseURLs, so its token could not be used")
		}
	}
	if cfg.AfterLogin == "" {
		cfg.AfterLogin = DefaultAfterLogin
	}
	if !SafeReturnTo(cfg.AfterLogin) {
		return nil, bad("AfterLogin", "must be a path on this site, such as /home")
	}
	if cfg.StateTTL == 0 {
		cfg.StateTTL = DefaultLaunchStateTTL
	}
	if cfg.MaxPendingLaunches == 0 {
		cfg.MaxPendingLaunches = DefaultMaxPendingLaunches
	}
	disc := cfg.Discoverer
	if disc == nil {
		disc = &Discoverer{HTTPClient: r.cfg.HTTPClient}
	}
	l := &Launcher{
		r:      r,
		cfg:    cfg,
		disc:   disc,
		openid: slices.Contains(strings.Fields(cfg.Scope), "openid"),
	}
	l.pending.key = r.cfg.SessionKey + ".launches"
	l.ids.client = boundedClient(r.cfg.HTTPClient)
	return l, nil
}

// LaunchHandler returns the handler of the launch route (GET, typically
// /launch). With iss and launch in the query it is an EHR launch: iss must
// be one of LaunchConfig.Issuers exactly, or the answer is 400 and nothing
// is redirected. Without them it is a standalone launch at FHIRBaseURL. A
// return_to parameter that is a path on this site is where the callback
// sends the browser after the login; any other return_to is refused.
//
// It keeps a fresh state (128 random bits or more) and PKCE verifier in
// the session, and redirects (302) to the authorization endpoint with
// response_type=code, client_id, redirect_uri, scope, state, aud,
// code_challenge (S256), launch when given, and nonce with openid.
//
// A session that holds no token lives twice StateTTL from the launch, not
// the session manager's whole Lifetime, until a login saves a token (whose
// Save renews it). The launch's and the callback's own answers carry
// Content-Security-Policy (nothing loads or runs; frame-ancestors 'self'
// and the origins of Issuers) and Referrer-Policy: no-referrer.
//
// Mount it behind the session manager's LoadAndSave, as every route.
func (l *Launcher) LaunchHandler() http.Handler { return http.HandlerFunc(l.serveLaunch) }

// CallbackHandler returns the handler of the redirect URI's route (GET).
// It checks the state against the launches of the session (each state
// works once, within StateTTL), answers an authorization error
// (access_denied, …) with a page or JSON that says so, exchanges the code
// once with the Refresher's client authentication and PKCE verifier,
// validates the id_token when the scope has openid, and saves the token
// as a new launch of the session, with Refresher.Save's guarantees (a new
// session token). It then redirects (303) to the launch's return_to or
// AfterLogin, with smart_launch=<launch id> added to its query.
//
// Each completed launch is its own login, with its own token, grant,
// patient and user, named by its launch id (128 random bits or more,
// URL-safe): the session keeps up to Config.MaxLaunches of them, for
// several tabs. The page keeps the id (in its links, or per tab in
// sessionStorage) and names it in every request (LaunchHeader,
// LaunchParam); see Refresher.Token and AttachRequest. A launch for the
// same user and patient as an earlier one replaces it; a launch of
// another user (their validated id_tokens differ, at the same FHIR
// server) ends the earlier user's launches, so that a session holds one
// user's; beyond MaxLaunches the least recently used launch is dropped.
// Each launch taken out has its grant revoked, as Logout does.
//
// A callback that arrives without the session that started the launch is
// answered with the likely reason: an EHR that opened the app in an iframe
// while the session cookie is SameSite=Lax (see the README's "Launch").
func (l *Launcher) CallbackHandler() http.Handler { return http.HandlerFunc(l.serveCallback) }

// maxParamBytes bounds every query parameter the launch and the callback
// read.
const maxParamBytes = 4096

func (l *Launcher) serveLaunch(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		l.fail(w, req, &LaunchError{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "the launch takes GET"})
		return
	}
	q, lerr := launchParams(req.URL.RawQuery, "iss", "launch", "return_to")
	if lerr != nil {
		l.fail(w, req, lerr)
		return
	}
	iss, launch, returnTo := q["iss"], q["launch"], q["return_to"]
	aud := l.cfg.FHIRBaseURL
	switch {
	case launch != "" && iss == "":
		l.fail(w, req, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_request",
			Description: "an EHR launch needs iss together with launch"})
		return
	case iss != "":
		if !slices.Contains(l.cfg.Issuers, iss) {
			l.fail(w, req, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_issuer",
				Description: "this app does not launch from the FHIR server named by iss; it is not in the app's list of issuers"})
			return
		}
		aud = iss
	}
	if returnTo != "" && !SafeReturnTo(returnTo) {
		l.fail(w, req, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_return_to",
			Description: "return_to must be a path on this site"})
		return
	}
	if _, ok := l.r.get(req.Context()); !ok {
		l.fail(w, req, launchErrorFrom(ErrNoSession, "the launch"))
		return
	}
	endpoint, err := l.authorizeEndpoint(req.Context(), aud)
	if err != nil {
		l.fail(w, req, launchErrorFrom(err, "finding the authorization endpoint"))
		return
	}
	p := pendingLaunch{
		State:    rand.Text(),
		Verifier: oauth2.GenerateVerifier(),
		Aud:      aud,
		ReturnTo: returnTo,
		Expires:  l.r.cfg.Now().Add(l.cfg.StateTTL).Unix(),
	}
	if l.openid {
		p.Nonce = rand.Text()
	}
	target, _ := url.Parse(endpoint) // checked
	params := target.Query()
	for k, v := range map[string]string{
		"response_type":         "code",
		"client_id":             l.r.cfg.ClientID,
		"redirect_uri":          l.cfg.RedirectURL,
		"scope":                 l.cfg.Scope,
		"state":                 p.State,
		"aud":                   aud,
		"code_challenge":        oauth2.S256ChallengeFromVerifier(p.Verifier),
		"code_challenge_method": "S256",
	} {
		params.Set(k, v)
	}
	if launch != "" {
		params.Set("launch", launch)
	}
	if p.Nonce != "" {
		params.Set("nonce", p.Nonce)
	}
	target.RawQuery = params.Encode()
	l.boundAnonymousSession(req.Context()) // launchheaders.go
	err = l.pending.update(req.Context(), l, func(list []pendingLaunch) []pendingLaunch {
		list = append(list, p)
		if n := len(list) - l.cfg.MaxPendingLaunches; n > 0 {
			list = list[n:] // the oldest first
		}
		return list
	}, func() error {
		w.Header().Set("Cache-Control", "no-store")
		setLaunchHeaders(w.Header(), frameAncestors(l.cfg.Issuers)) // launchheaders.go
		http.Redirect(w, req, target.String(), http.StatusFound)
		return nil
	})
	if err != nil {
		l.fail(w, req, launchErrorFrom(err, "keeping the launch state"))
	}
}

// launchParams reads the named parameters of a launch or callback query:
// each at most once and at most maxParamBytes long.
func launchParams(rawQuery string, names ...string) (map[string]string, *LaunchError) {
	if len(rawQuery) > 4*maxParamBytes {
		return nil, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "the query is too long"}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "the query is malformed"}
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		v := q[name]
		switch {
		case len(v) > 1:
			return nil, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "parameter " + name + " is repeated"}
		case len(v) == 1 && len(v[0]) > maxParamBytes:
			return nil, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "parameter " + name + " is too long"}
		case len(v) == 1:
			out[name] = v[0]
		}
	}
	return out, nil
}

// authorizeEndpoint returns the authorization endpoint for aud:
// LaunchConfig.AuthorizeURL, or the one aud's SMART configuration names,
// after checking that configuration.
func (l *Launcher) authorizeEndpoint(ctx context.Context, aud string) (string, error) {
	if l.cfg.AuthorizeURL != "" {
		return l.cfg.AuthorizeURL, nil
	}
	conf, err := l.disc.Discover(ctx, aud)
	if err != nil {
		return "", err
	}
	if conf.AuthorizationEndpoint == "" {
		return "", &DiscoveryError{URL: conf.url, Reason: "authorization_endpoint is missing; set LaunchConfig.AuthorizeURL"}
	}
	if !l.cfg.AllowWithoutS256 && !slices.Contains(conf.CodeChallengeMethodsSupported, "S256") {
		return "", &DiscoveryError{URL: conf.url, Reason: "code_challenge_methods_supported does not list S256 " +
			"(SMART requires PKCE with S256); set LaunchConfig.AllowWithoutS256 to launch anyway"}
	}
	if conf.TokenEndpoint != l.r.cfg.TokenURL {
		return "", &DiscoveryError{URL: conf.url, Reason: "token_endpoint " + conf.TokenEndpoint +
			" is not the Refresher's TokenURL " + l.r.cfg.TokenURL + "; use one Refresher and Launcher per authorization server"}
	}
	return conf.AuthorizationEndpoint, nil
}

func (l *Launcher) serveCallback(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		l.fail(w, req, &LaunchError{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "the callback takes GET"})
		return
	}
	q, lerr := launchParams(req.URL.RawQuery, "state", "code", "error", "error_description")
	if lerr != nil {
		l.fail(w, req, lerr)
		return
	}
	if _, ok := l.r.get(ctx); !ok {
		l.fail(w, req, launchErrorFrom(ErrNoSession, "the callback"))
		return
	}
	p, lerr := l.claim(ctx, req, q["state"])
	if lerr != nil {
		l.fail(w, req, lerr)
		return
	}
	if err := l.claimShared(ctx, p); err != nil {
		l.fail(w, req, launchErrorFrom(err, "claiming the launch state"))
		return
	}
	if code := q["error"]; code != "" {
		l.fail(w, req, authorizationError(code, q["error_description"]))
		return
	}
	if q["code"] == "" {
		l.fail(w, req, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_request",
			Description: "the authorization server sent no code; launch again"})
		return
	}
	// The code is sent once, on a context the browser cannot cancel: an
	// answer that arrives after the user left is still a used code.
	xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.r.cfg.RefreshTimeout)
	defer cancel()
	tok, err := l.r.exchangeCode(xctx, q["code"], p.Verifier, l.cfg.RedirectURL)
	if err != nil {
		l.fail(w, req, launchErrorFrom(err, "exchanging the authorization code"))
		return
	}
	id, err := l.identity(xctx, p, tok)
	if err != nil {
		l.r.discardLogin(xctx, tok) // replaced.go
		l.fail(w, req, launchErrorFrom(err, "validating the id_token"))
		return
	}
	// Saved with the launches other tabs started meanwhile merged in, under
	// the session's lock, since Save commits this request's copy.
	keep := func(list []pendingLaunch) []pendingLaunch { return list }
	var launchID string
	if err := l.pending.update(ctx, l, keep, func() (err error) {
		launchID, err = l.r.addLaunch(ctx, tok, &id)
		return err
	}); err != nil {
		l.fail(w, req, launchErrorFrom(err, "saving the token"))
		return
	}
	l.r.cfg.Logger.InfoContext(ctx, "smartrefresh: logged in", "aud", p.Aud, "fhir_user", id.FHIRUser,
		"scope", tok.Scope, "refresh_token", tok.RefreshToken != "")
	target := l.cfg.AfterLogin
	if p.ReturnTo != "" {
		target = p.ReturnTo
	}
	w.Header().Set("Cache-Control", "no-store")
	setLaunchHeaders(w.Header(), frameAncestors(l.cfg.Issuers)) // launchheaders.go
	http.Redirect(w, req, withLaunchParam(target, launchID), http.StatusSeeOther)
}

// claim finds the pending launch of state in the session and takes it out,
// so that a state works once. Its errors say why there is none.
func (l *Launcher) claim(ctx context.Context, req *http.Request, state string) (pendingLaunch, *LaunchError) {
	if state == "" {
		return pendingLaunch{}, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_state",
			Description: "the callback has no state; launch the app again"}
	}
	var (
		found   pendingLaunch
		outcome *LaunchError
		anyLeft bool
	)
	now := l.r.cfg.Now()
	err := l.pending.update(ctx, l, func(list []pendingLaunch) []pendingLaunch {
		anyLeft = len(list) > 0
		i := slices.IndexFunc(list, func(p pendingLaunch) bool { return equalSecret(p.State, state) })
		if i < 0 {
			return list
		}
		found = list[i]
		switch {
		case !l.used.claim(state, time.Unix(found.Expires, 0)):
			outcome = stateUsed()
		case now.Unix() > found.Expires:
			outcome = &LaunchError{Status: http.StatusBadRequest, Code: "state_expired",
				Description: "the launch took longer than " + l.cfg.StateTTL.String() + "; launch the app again"}
		}
		return slices.Delete(list, i, i+1)
	}, nil)
	switch {
	case err != nil:
		return pendingLaunch{}, launchErrorFrom(err, "reading the launch state")
	case outcome != nil:
		return pendingLaunch{}, outcome
	case found.State != "":
		return found, nil
	case l.used.seen(state):
		return pendingLaunch{}, stateUsed()
	case !anyLeft && !hasSessionCookie(req, l.r.cfg.Sessions.Cookie.Name):
		return pendingLaunch{}, &LaunchError{Status: http.StatusBadRequest, Code: "session_missing",
			Description: "the browser sent no session cookie with the callback, so the launch it belongs to cannot be found. " +
				"The usual cause is an EHR that opens the app in an iframe while the session cookie is SameSite=Lax " +
				"(browsers leave such cookies off cross-site frames): serve the app over https with the cookie " +
				"SameSite=None; Secure; Partitioned (Chromium blocks SameSite=None; Secure alone in a third-party frame), " +
				"or have the EHR open the app in a new window. The same happens when the launch and the callback use " +
				"different host names for this app, such as localhost and 127.0.0.1: register the redirect URI with the " +
				"host the app is opened with."}
	case !anyLeft:
		return pendingLaunch{}, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_state",
			Description: "this session has no launch under way (it expired, or the session was renewed meanwhile); launch the app again"}
	}
	return pendingLaunch{}, &LaunchError{Status: http.StatusBadRequest, Code: "invalid_state",
		Description: "the state matches no launch of this session; launch the app again"}
}

func stateUsed() *LaunchError {
	return &LaunchError{Status: http.StatusBadRequest, Code: "state_used",
		Description: "this launch has already been completed (the callback was loaded twice); launch the app again if you are not logged in"}
}

func hasSessionCookie(req *http.Request, name string) bool {
	_, err := req.Cookie(name)
	return err == nil
}

// authorizationError is the error the authorization server sent back to
// the callback (RFC 6749 section 4.1.2.1).
func authorizationError(code, description string) *LaunchError {
	e := &LaunchError{Status: http.StatusBadRequest, Code: limit(code, 64),
		Description: "the authorization server refused: " + limit(code, 64)}
	switch code {
	case "access_denied":
		e.Status = http.StatusForbidden
		e.Description = "the authorization was refused (access_denied): the user or the EHR did not allow this app"
	case "temporarily_unavailable":
		e.Status = http.StatusServiceUnavailable
		e.Description = "the authorization server is temporarily unavailable; launch the app again later"
	case "server_error":
		e.Status = http.StatusBadGateway
		e.Description = "the authorization server failed (server_error); launch the app again"
	}
	if description != "" {
		e.Description += ": " + limit(description, 256)
	}
	return e
}

// boundedClient returns a client for remote key sets: base's transport,
// answers read up to maxResponseBytes, and a timeout.
func boundedClient(base *http.Client) *http.Client {
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &http.Client{Transport: limitTransport{rt}, Timeout: DefaultDiscoveryTimeout}
}

type limitTransport struct{ base http.RoundTripper }

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: maxResponseBytes}
	return resp, nil
}

// limitedBody fails a read past its limit instead of cutting the body
// short silently.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

var errBodyTooLarge = errors.New("answer larger than 1 MiB")

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// withLaunchParam returns target (a path on this site, SafeReturnTo) with
// smart_launch=id added at the end of its query, in place of any
// smart_launch it had; the rest of the query is kept as it was.
func withLaunchParam(target, id string) string {
	path, frag, hasFrag := strings.Cut(target, "#")
	path, query, _ := strings.Cut(path, "?")
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(kv, "="); kv != "" && k != LaunchParam {
			kept = append(kept, kv)
		}
	}
	out := path + "?" + strings.Join(append(kept, LaunchParam+"="+url.QueryEscape(id)), "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}
