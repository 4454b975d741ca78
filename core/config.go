package core

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Default values of the optional Config fields.
const (
	DefaultSessionKey     = "smartrefresh.token"
	DefaultLeeway         = 60 * time.Second
	DefaultRefreshTimeout = 30 * time.Second
)

// Config configures a Refresher. TokenURL, ClientID and Sessions are
// required; the other fields have sensible defaults.
type Config struct {
	// TokenURL is the authorization server's token endpoint. It must use
	// https, except on a loopback address (for tests and demos).
	TokenURL string
	// ClientID is the client's registered client_id.
	ClientID string
	// ClientSecret is the client secret of a confidential client; leave it
	// empty for a public client.
	ClientSecret string
	// AuthMethod says how the client authenticates to the token endpoint.
	// It defaults to None when ClientSecret is empty and must be set when it
	// is not: the method is never guessed.
	AuthMethod AuthMethod
	// Scope, when set, is sent with every refresh request to narrow the
	// access token's scope. SMART requires it to be a subset of the grant.
	Scope string
	// Sessions is the app's session manager; the token lives in the session
	// of each request under SessionKey.
	Sessions *scs.SessionManager
	// SessionKey is the session key the token is stored under
	// (DefaultSessionKey when empty).
	SessionKey string
	// Leeway is how long before its expiry a token is refreshed
	// (DefaultLeeway when zero). For tokens whose lifetime is short
	// compared with Leeway, the margin shrinks to a quarter of the lifetime,
	// so that a fresh token is never due.
	Leeway time.Duration
	// RefreshTimeout bounds each call to the token endpoint
	// (DefaultRefreshTimeout when zero). A refresh runs on its own context:
	// the request that started it may go away without cancelling it.
	RefreshTimeout time.Duration
	// HTTPClient makes the token requests and, through Client, the FHIR
	// requests (http.DefaultClient's transport when nil). Its Timeout, if
	// any, also applies.
	HTTPClient *http.Client
	// Logger receives structured logs of refreshes and failures; tokens and
	// secrets never appear in them. Nothing is logged when nil.
	Logger *slog.Logger
	// Now is the clock, for tests (time.Now when nil).
	Now func() time.Time
	// OnRefresh, when set, is called after each token call that succeeded,
	// with facts about it (never a token).
	OnRefresh func(RefreshInfo)
}

// RefreshInfo describes a completed refresh.
type RefreshInfo struct {
	// Rotated reports whether the server issued a new refresh token.
	Rotated bool
	// Duration is how long the token call took.
	Duration time.Duration
	// Expiry is the new access token's expiry (zero when unknown).
	Expiry time.Time
}

func (c Config) withDefaults() Config {
	if c.SessionKey == "" {
		c.SessionKey = DefaultSessionKey
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.RefreshTimeout == 0 {
		c.RefreshTimeout = DefaultRefreshTimeout
	}
	if c.AuthMethod == "" && c.ClientSecret == "" {
		c.AuthMethod = None
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	if c.TokenURL == "" {
		return &ConfigError{Field: "TokenURL", Reason: "is required"}
	}
	if err := checkEndpoint(c.TokenURL); err != nil {
		return &ConfigError{Field: "TokenURL", Reason: err.Error()}
	}
	if c.ClientID == "" {
		return &ConfigError{Field: "ClientID", Reason: "is required"}
	}
	if c.Sessions == nil {
		return &ConfigError{Field: "Sessions", Reason: "is required (the app's *scs.SessionManager)"}
	}
	switch c.AuthMethod {
	case ClientSecretPost, ClientSecretBasic:
		if c.ClientSecret == "" {
			return &ConfigError{Field: "ClientSecret", Reason: "is required by AuthMethod " + string(c.AuthMethod)}
		}
	case None:
		if c.ClientSecret != "" {
			return &ConfigError{Field: "AuthMethod", Reason: "is none but a ClientSecret is set; choose client_secret_post or client_secret_basic"}
		}
	case "":
		return &ConfigError{Field: "AuthMethod", Reason: "is required with a ClientSecret (client_secret_post or client_secret_basic); it is never guessed"}
	default:
		return &ConfigError{Field: "AuthMethod", Reason: "unsupported method " + string(c.AuthMethod)}
	}
	if c.Leeway < 0 {
		return &ConfigError{Field: "Leeway", Reason: "must not be negative"}
	}
	if c.RefreshTimeout < 0 {
		return &ConfigError{Field: "RefreshTimeout", Reason: "must not be negative"}
	}
	return nil
}

// checkEndpoint accepts absolute https URLs, and http URLs on a loopback
// host.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errorString("is not a valid URL")
	}
	if u.Host == "" {
		return errorString("must be an absolute URL")
	}
	if u.User != nil {
		return errorString("must not contain credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errorString("must use https (plain http is allowed only on loopback)")
	}
	return errorString("must use https")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type errorString string

func (e errorString) Error() string { return string(e) }
