package demo

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/smartotel"
)

// Options are the parts of an App that tests control.
type Options struct {
	// Name is the framework's name, shown on the page.
	Name string
	// Now is the clock of the Refresher (time.Now when nil).
	Now func() time.Time
	// Logger receives the app's logs (discarded when nil).
	Logger *slog.Logger
	// HTTPClient makes the token and FHIR requests (a client with a 30s
	// timeout when nil).
	HTTPClient *http.Client
	// Store and Coordinator are the session store and the Refresher's
	// Coordinator the replicas share (see OpenShared); nil: sessions in
	// memory, one process.
	Store       scs.Store
	Coordinator core.Coordinator
}

// App is the demo application, whatever the framework: the session
// manager, the Refresher that keeps each session's token valid, and the
// Launcher that obtains the first token.
type App struct {
	// Sessions is the scs session manager; LoadAndSave must wrap the whole
	// router.
	Sessions *scs.SessionManager
	// Refresher keeps the session's access token valid.
	Refresher *core.Refresher
	// Launcher runs the SMART launch: mount its LaunchHandler at /launch
	// and its CallbackHandler at /callback.
	Launcher *core.Launcher
	// Metrics serves the Prometheus metrics at /metrics; nil unless the
	// Config asks for them (-metrics).
	Metrics http.Handler
	// FHIRProxy forwards the page's FHIR calls to the FHIR server with the
	// session's token; the routers mount it at ProxyPrefix.
	FHIRProxy http.Handler

	name       string
	embedded   bool
	revokes    bool
	fhirBase   string
	httpClient *http.Client
	logger     *slog.Logger
	now        func() time.Time
	meters     *sdkmetric.MeterProvider // nil without -metrics
	rotations  *rotations
}

// ProxyPrefix is where the routers mount App.FHIRProxy: the page reads
// ProxyPrefix+"Patient/123".
const ProxyPrefix = "/fhir/"

// csrfKey holds the session's CSRF token, which the logout form must send
// back. It is made afresh after each logout.
const csrfKey = "demo.csrf"

// NewSessions returns the demo's session manager. IdleTimeout makes scs
// commit every request's copy of the session, so a slow request can write
// back a copy holding an already rotated refresh token: the stale-copy case
// the Refresher handles. SameSite Lax lets the session cookie come along on
// the redirect back from the authorization server.
func NewSessions(secure bool) *scs.SessionManager {
	sm := scs.New()
	sm.Lifetime = 12 * time.Hour
	sm.IdleTimeout = 30 * time.Minute
	sm.Cookie.Name = "smartrefresh_demo"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = secure
	return sm
}

// New returns the App for cfg, which must name the SMART server (see
// StartMock for the embedded one) and the redirect URL.
func New(cfg Config, opts Options) (*App, error) {
	if cfg.RedirectURL == "" {
		return nil, errors.New("demo: RedirectURL is required")
	}
	if cfg.FHIRBase == "" {
		return nil, errors.New("demo: FHIRBase is required (TokenURL and AuthorizeURL are discovered when empty)")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}

	sm := NewSessions(strings.HasPrefix(cfg.RedirectURL, "https://"))
	if opts.Store != nil {
		sm.Store = opts.Store
	}
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		logger.ErrorContext(r.Context(), "session error", "error", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	}

	fhirBase := strings.TrimRight(cfg.FHIRBase, "/")
	issuers := cfg.Issuers
	if len(issuers) == 0 {
		issuers = []string{fhirBase}
	}
	rotations := newRotations()
	rcfg := core.Config{
		TokenURL:        cfg.TokenURL,
		ClientID:        cfg.ClientID,
		ClientSecret:    cfg.ClientSecret,
		AuthMethod:      cfg.AuthMethod(),
		FHIRBaseURLs:    append([]string{fhirBase}, issuers...),
		RevocationURL:   cfg.RevokeURL,
		RevocationStyle: cfg.RevokeStyle,
		Sessions:        sm,
		HTTPClient:      httpClient,
		Logger:          logger,
		Now:             now,
		Coordinator:     opts.Coordinator,
		OnRefresh: func(info core.RefreshInfo) {
			logger.Info("access token refreshed",
				"rotated", info.Rotated, "took", info.Duration, "expiry", info.Expiry)
			rotations.record(info, now())
		},
	}
	var (
		meters  *sdkmetric.MeterProvider
		metrics http.Handler
	)
	if cfg.Metrics {
		var err error
		if meters, metrics, err = newMetrics("smartrefresh-demo"); err != nil {
			return nil, fmt.Errorf("demo: metrics: %w", err)
		}
		// The metrics only: smartotel's spans go to the global
		// TracerProvider, which the demo leaves a no-op.
		if rcfg.Observer, err = smartotel.New(smartotel.Config{MeterProvider: meters}); err != nil {
			return nil, fmt.Errorf("demo: metrics: %w", err)
		}
	}
	if rcfg.AuthMethod == core.PrivateKeyJWT {
		rcfg.PrivateKey, rcfg.KeyID = cfg.PrivateKey, cfg.KeyID
	}
	discoverer := &core.Discoverer{HTTPClient: httpClient}
	if rcfg.TokenURL == "" {
		// Only -fhir-base: the endpoints come from the server's
		// .well-known/smart-configuration (the authorization endpoint is
		// the Launcher's to discover, at each launch).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conf, err := discoverer.Discover(ctx, fhirBase)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("demo: discovering the endpoints of %s: %w", fhirBase, err)
		}
		rcfg = conf.Config(rcfg)
	}
	r, err := core.New(rcfg)
	if err != nil {
		return nil, err
	}
	proxy, err := r.FHIRProxy(core.ProxyConfig{Upstream: fhirBase, Prefix: ProxyPrefix})
	if err != nil {
		return nil, err
	}
	launcher, err := core.NewLauncher(r, core.LaunchConfig{
		RedirectURL:  cfg.RedirectURL,
		Scope:        cfg.Scopes,
		FHIRBaseURL:  fhirBase,
		Issuers:      issuers,
		AuthorizeURL: cfg.AuthorizeURL, // discovered when empty
		Discoverer:   discoverer,
	})
	if err != nil {
		return nil, err
	}

	return &App{
		Sessions:   sm,
		Refresher:  r,
		Launcher:   launcher,
		Metrics:    metrics,
		FHIRProxy:  proxy,
		meters:     meters,
		name:       opts.Name,
		embedded:   cfg.Embedded(),
		revokes:    rcfg.RevocationURL != "",
		fhirBase:   fhirBase,
		httpClient: httpClient,
		logger:     logger,
		now:        now,
		rotations:  rotations,
	}, nil
}

// Close releases the App's resources: it shuts the MeterProvider down, if
// there is one.
func (a *App) Close(ctx context.Context) error {
	if a.meters == nil {
		return nil
	}
	return a.meters.Shutdown(ctx)
}

// CSRFToken returns the session's CSRF token, which the logout form sends
// back, making one if the session has none yet.
func (a *App) CSRFToken(ctx context.Context) string {
	tok := a.Sessions.GetString(ctx, csrfKey)
	if tok == "" {
		tok = rand.Text()
		a.Sessions.Put(ctx, csrfKey, tok)
	}
	return tok
}

// LaunchField is the logout form's field naming the page's launch
// (core.LaunchParam).
const LaunchField = core.LaunchParam

// Logout handles the logout form: csrf is its csrf field, launch its
// smart_launch field, the launch of the tab that sent it. When csrf matches
// the session's CSRF token (compared in constant time), Logout ends that
// launch: it revokes its grant at the revocation endpoint and removes it
// from the session (core's Refresher.LogoutLaunch), so that the session's
// other launches, in other tabs, keep working; then it renews the session
// token. The caller then redirects to the home page (303).
//
// Together with the session cookie's SameSite=Lax, which keeps the cookie
// off cross-site POSTs, the CSRF token stops other sites from logging the
// user out. A form without it, or with another, gets a 403 *Error and
// nothing changes. A failed revocation is logged and the user is logged out
// all the same: the token is gone from the session, and this process never
// uses the grant again.
func (a *App) Logout(ctx context.Context, csrf, launch string) error {
	want := a.Sessions.GetString(ctx, csrfKey)
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(csrf)) != 1 {
		a.logger.WarnContext(ctx, "logout refused: the form's CSRF token does not match the session")
		return &Error{http.StatusForbidden, "invalid_csrf", "the logout form does not belong to this session; reload the page and try again"}
	}
	switch err := a.Refresher.LogoutLaunch(core.WithLaunch(ctx, launch)); {
	case errors.Is(err, core.ErrNoSession):
		return err
	case err != nil:
		// A *RevocationError, or the session store's: never a token.
		a.logger.WarnContext(ctx, "logged out, but the grant may not be revoked at the server", "error", err)
	default:
		a.logger.InfoContext(ctx, "logged out")
	}
	// The next login gets a new CSRF token, once no tab is logged in.
	if _, err := a.Refresher.Info(ctx); errors.Is(err, core.ErrNoToken) {
		a.Sessions.Remove(ctx, csrfKey)
	}
	// A new session token, so that the one the browser held before the
	// logout names nothing any more.
	if err := a.Sessions.RenewToken(ctx); err != nil {
		a.logger.ErrorContext(ctx, "renewing the session token at logout", "error", err)
		return &Error{http.StatusInternalServerError, "session_error", "the session could not be renewed"}
	}
	return nil
}

// Patient returns a Patient resource from the FHIR server with the
// session's token (refreshed first if it is due): the launch context's
// patient; without one (a provider login, a server that gives no launch
// patient), the logged-in user when fhirUser is a Patient, else the first
// result of a Patient search. So the demo exercises the token at any
// server.
func (a *App) Patient(ctx context.Context) (json.RawMessage, error) {
	info, err := a.Refresher.Info(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case info.Patient != "":
		return a.fhirGet(ctx, a.baseOf(info)+"/Patient/"+url.PathEscape(info.Patient))
	case strings.Contains(info.FHIRUser, "/Patient/"):
		return a.fhirGet(ctx, info.FHIRUser)
	}
	bundle, err := a.fhirGet(ctx, a.baseOf(info)+"/Patient?_count=1")
	if err != nil {
		return nil, err
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(bundle, &b) != nil || len(b.Entry) == 0 || len(b.Entry[0].Resource) == 0 {
		return nil, &Error{http.StatusNotFound, "no_patient", "the token has no launch patient, and a Patient search found none"}
	}
	return b.Entry[0].Resource, nil
}

// baseOf is the FHIR server of the session's login.
func (a *App) baseOf(info core.SessionInfo) string {
	if info.FHIRBaseURL != "" {
		return strings.TrimRight(info.FHIRBaseURL, "/")
	}
	return a.fhirBase
}

// fhirGet reads a FHIR resource or search with the refreshing client.
func (a *App) fhirGet(ctx context.Context, u string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := a.Refresher.Client(ctx).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The client refreshed the token and sent the GET again: a 401
		// that still comes back is the FHIR server refusing fresh tokens,
		// answered as core answers ErrTokenRejected.
		status, body := core.ErrorResponse(core.ErrTokenRejected)
		return nil, &Error{status, body.Error, body.ErrorDescription}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{http.StatusBadGateway, "fhir_error", "the FHIR server answered " + resp.Status}
	}
	if !json.Valid(body) {
		return nil, &Error{http.StatusBadGateway, "fhir_error", "the FHIR server answered with invalid JSON"}
	}
	return body, nil
}

// TokenView is the JSON answer of /api/token: what the session's token
// says about itself, without any secret. The page reads it after each of
// its FHIR calls, which may have refreshed the token, to keep the expiry,
// the refresh count and the last refresh current.
type TokenView struct {
	ExpiresAt string `json:"expires_at"` // RFC 3339; empty when the server did not say
	// ExpiresInMillis is the access token's remaining lifetime, and
	// RefreshInMillis the time until it is due for a refresh (0 once due),
	// both by the app's clock; absent when the server did not say.
	ExpiresInMillis *int64 `json:"expires_in_ms,omitempty"`
	RefreshInMillis *int64 `json:"refresh_in_ms,omitempty"`
	Scope           string `json:"scope"`
	Patient         string `json:"patient"`
	Refreshes       int    `json:"refreshes"`
	// LastRefresh is the refresh that obtained the current token, when
	// there was one and this process made it.
	LastRefresh *LastRefresh `json:"last_refresh,omitempty"`
	// FHIRUser is who logged in (the validated id_token's fhirUser), and
	// Server the FHIR server in use.
	FHIRUser string `json:"fhir_user,omitempty"`
	Server   string `json:"fhir_base_url,omitempty"`
}

// Token describes the session's token.
func (a *App) Token(ctx context.Context) (TokenView, error) {
	info, err := a.Refresher.Info(ctx)
	if err != nil {
		return TokenView{}, err
	}
	v := TokenView{Scope: info.Scope, Patient: info.Patient, Refreshes: info.Refreshes,
		FHIRUser: info.FHIRUser, Server: info.FHIRBaseURL, LastRefresh: a.rotations.lastRefresh(info)}
	if !info.Expiry.IsZero() {
		now := a.now()
		v.ExpiresAt = info.Expiry.UTC().Format(time.RFC3339)
		in, due := max(info.Expiry.Sub(now).Milliseconds(), 0), max(info.RefreshAt.Sub(now).Milliseconds(), 0)
		v.ExpiresInMillis, v.RefreshInMillis = &in, &due
	}
	return v, nil
}

// Error is an error of the demo's own, with the status and JSON body to
// answer it with.
type Error struct {
	Status      int
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// ErrorResponse returns the status and JSON body to answer err with. Errors
// of the Refresher get core's answer (401 when the user must launch again,
// 403 token_rejected when the FHIR server refuses the app's tokens); other
// failures of the FHIR call are a 502.
func ErrorResponse(err error) (int, core.ErrorBody) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status, core.ErrorBody{Error: e.Code, ErrorDescription: e.Description}
	case errors.Is(err, core.ErrReauthRequired), errors.Is(err, core.ErrTransient), errors.Is(err, core.ErrTokenRejected),
		errors.Is(err, core.ErrMisconfigured), errors.Is(err, context.Canceled):
		return core.ErrorResponse(err)
	}
	return http.StatusBadGateway, core.ErrorBody{Error: "fhir_unavailable", ErrorDescription: "the FHIR server could not be reached"}
}

// WriteJSON writes v as JSON with status, for the net/http example.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteError writes the JSON answer to err, for the net/http example.
func WriteError(w http.ResponseWriter, err error) {
	status, body := ErrorResponse(err)
	WriteJSON(w, status, body)
}

// LogError logs err of a request if it is worth logging (not a plain
// logged-out request).
func (a *App) LogError(ctx context.Context, msg string, err error) {
	if errors.Is(err, core.ErrNoToken) {
		return
	}
	a.logger.WarnContext(ctx, msg, "error", err)
}
