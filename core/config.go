package core

import (
	"crypto"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Default values of the optional Config fields.
const (
	DefaultSessionKey     = "smartrefresh.token"
	DefaultLeeway         = 60 * time.Second
	DefaultRefreshTimeout = 30 * time.Second
	DefaultMaxLaunches    = 4
)

// Config configures a Refresher. TokenURL, ClientID and Sessions are
// required; the other fields have sensible defaults.
type Config struct {
	// TokenURL is the authorization server's token endpoint. It must use
	// https, except on a loopback address (for tests and demos).
	TokenURL string
	// ClientID is the client's registered client_id.
	ClientID string
	// ClientSecret is the client secret of a confidential symmetric client
	// (ClientSecretPost, ClientSecretBasic); leave it empty otherwise.
	ClientSecret string
	// AuthMethod says how the client authenticates to the token endpoint.
	// It defaults to None when neither ClientSecret nor PrivateKey is set
	// and must be set when one is: the method is never guessed.
	AuthMethod AuthMethod
	// PrivateKey signs the client assertions of PrivateKeyJWT: an RSA key
	// of 2048 bits or more (RS384) or an ECDSA P-384 key (ES384). Any
	// crypto.Signer works, so keys held in an HSM or a KMS can be used;
	// ParsePrivateKeyPEM reads one from a PEM file.
	PrivateKey crypto.Signer
	// KeyID is the kid of PrivateKey in the client's registered JWK Set,
	// sent in every assertion's header. Required with PrivateKeyJWT.
	KeyID string
	// SigningAlg is the assertion's algorithm, RS384 or ES384. When empty it
	// follows from the type of PrivateKey; when set it must agree with it.
	SigningAlg string
	// RevocationURL is the endpoint Logout revokes tokens at. When empty,
	// Logout only removes the token from the session. Like TokenURL it must
	// use https, except on a loopback address.
	RevocationURL string
	// RevocationStyle is the shape of the revocation request
	// (RevokeRFC7009 by default).
	RevocationStyle RevocationStyle
	// Scope, when set, is sent with every refresh request to narrow the
	// access token's scope. SMART requires it to be a subset of the grant.
	Scope string
	// Sessions is the app's session manager; the token lives in the session
	// of each request under SessionKey. Each redemption is remembered until
	// the session's deadline or now plus the manager's Lifetime, whichever
	// is later, read at that moment; a "remember me" SetDeadline therefore
	// belongs after Save (whose RenewToken resets the deadline).
	Sessions *scs.SessionManager
	// SessionKey is the session key the token is stored under
	// (DefaultSessionKey when empty).
	SessionKey string
	// MaxLaunches is how many completed launches (logins, each with its
	// own token, patient and grant) one session keeps, in several tabs
	// (DefaultMaxLaunches when zero). A launch beyond it drops the least
	// recently used one, whose grant is revoked (see Launcher and
	// Refresher.LogoutLaunch).
	MaxLaunches int
	// EncryptionKeys, when set, encrypt the token inside the session with
	// AES-256-GCM, so that the session store (Redis, a database, a cookie)
	// never holds it in the clear. Each key has EncryptionKeySize (32)
	// random bytes. The first key encrypts; all of them decrypt. A value
	// sealed with a key this process does not have (neither here nor in
	// DecryptionKeys) is left in the session and the request fails as
	// transient (ErrUnknownEncryptionKey, 503); one that fails to decrypt
	// under a key it has (tampered, moved from another session key), or a
	// token stored in the clear, is removed and the user must authorize
	// again (ErrCorruptSession). When nil, the session holds the token as
	// plain text. Either way the session value is a string, which every
	// scs codec carries unchanged.
	//
	// To rotate keys with several replicas, see DecryptionKeys.
	EncryptionKeys [][]byte
	// DecryptionKeys are keys that only decrypt session values (and a
	// Coordinator's records), never encrypt: the first phase of a key
	// rotation. Rotating from k1 to k2 on replicas that share sessions:
	//
	//  1. deploy EncryptionKeys [k1], DecryptionKeys [k2] everywhere;
	//  2. once every replica runs that, deploy EncryptionKeys [k2, k1];
	//  3. after the session Lifetime, drop k1.
	//
	// During each rolling deploy, and on a rollback of step 2 to step 1,
	// every replica reads what any other writes, so no session is lost.
	// A process that has only DecryptionKeys stores tokens in the clear and
	// reads both forms: that is how encryption is turned off without
	// logging anyone out.
	DecryptionKeys [][]byte
	// Leeway is how long before its expiry a token is refreshed
	// (DefaultLeeway when zero). For tokens whose lifetime is short
	// compared with Leeway, the margin shrinks to a quarter of the lifetime,
	// so that a fresh token is never due.
	Leeway time.Duration
	// RefreshTimeout bounds each refresh, all its attempts and waits
	// included (DefaultRefreshTimeout when zero). A refresh runs on its own
	// context: the request that started it may go away without cancelling
	// it. Requests waiting for a refresh are bounded by their own context.
	RefreshTimeout time.Duration
	// ResendAfter is how long after a refresh whose answer was lost
	// (ErrOutcomeUnknown: a timeout or reset after the request went out,
	// 500, 502, 504, a bare 503, a broken answer) the refresh token is
	// sent once more, within the same refresh and its RefreshTimeout,
	// whether or not the request that started it is still waiting
	// (DefaultResendAfter, 1 s, when zero; negative: never). Servers with
	// a reuse grace window accept that resend and the session goes on;
	// without it, the session's next request resends the token, perhaps
	// after the window closed, and the grant is revoked:
	//
	//	server                     grace window for a resent refresh token
	//	Amazon Cognito             RetryGracePeriodSeconds, 0–60 s
	//	Ory Hydra                  refresh_token grace period, up to 5 min
	//	Connect2id                 rotatedReuseGracePeriod, 5 s by default
	//	Okta, Auth0, Asgardeo      configurable (Auth0: reuse interval)
	//	strict (RFC 9700) servers  none: any resend revokes the grant
	//
	// A strict server revokes the grant on the resend as it would on the
	// next request's, whenever that came: the user logs in again once,
	// cleanly. Each resend is logged (warning), counted in the
	// smartrefresh.refresh.resends metric and reported as Resent to
	// OnRefresh or OnRefreshError. A grant whose previous refresh failed
	// too is in an outage, not a blip: it backs off instead (BackoffError).
	ResendAfter time.Duration
	// Retry bounds the retries of a token request that the server
	// certainly did not process, within RefreshTimeout. The zero value
	// means up to DefaultRetryAttempts attempts; see RetryPolicy.
	Retry RetryPolicy
	// Coordinator, when set, shares refreshes with the Refreshers of other
	// processes (replicas) that use the same session store, so that none
	// of them redeems a refresh token another already redeemed. Nil: this
	// process only; then a session must stay on one replica.
	Coordinator Coordinator
	// MaxConcurrentRefreshes caps the token calls this Refresher makes at
	// once, so that many sessions expiring together do not flood the
	// authorization server (0: no cap). Refreshes over the cap queue for a
	// slot, first come first served, for at most RefreshQueueTimeout; the
	// token call then starts with its whole RefreshTimeout. A refresh that
	// finds no slot in time fails with an *OverloadError (ErrOverloaded,
	// ErrTransient: 503 with Retry-After) without sending anything, and the
	// stored token is kept.
	MaxConcurrentRefreshes int
	// RefreshQueueTimeout bounds the wait for one of the
	// MaxConcurrentRefreshes slots (DefaultRefreshQueueTimeout when zero).
	// It is separate from RefreshTimeout, which only starts once a slot is
	// held.
	RefreshQueueTimeout time.Duration
	// HTTPClient makes the token requests and, through Client, the FHIR
	// requests (http.DefaultClient's transport when nil). Its Timeout
	// bounds the FHIR requests only: token and revocation requests run on
	// their own budget, RefreshTimeout, so that a Timeout meant for FHIR
	// calls cannot cut a token call short after the server rotated the
	// refresh token (the outcome would be unknown, and the next request
	// would send the spent refresh token again). Its transport, Jar and
	// CheckRedirect are used as they are (token requests never follow
	// redirects).
	HTTPClient *http.Client
	// FHIRBaseURLs, when set, are the only URLs Client sends the access
	// token to: a request must have a base's scheme, host and port, and
	// its path must be the base's path or continue it after a slash.
	// Client refuses other requests without sending them
	// (*DestinationError). Each must use https, except on loopback. Even
	// when it is empty, Client never sends the token over plain http to a
	// host that is not loopback.
	FHIRBaseURLs []string
	// Logger receives structured logs of refreshes and failures; tokens and
	// secrets never appear in them. Nothing is logged when nil.
	Logger *slog.Logger
	// Now is the clock, for tests (time.Now when nil).
	Now func() time.Time
	// OnRefresh, when set, is called after each token call that succeeded,
	// with facts about it (never a token). Hooks run on the refresh's
	// goroutine: keep them fast.
	OnRefresh func(RefreshInfo)
	// OnRefreshError, when set, is called after each refresh that failed.
	OnRefreshError func(RefreshErrorInfo)
	// OnReauth, when set, is called when a session's token is removed
	// because the user must authorize again.
	OnReauth func(ReauthInfo)
	// Observer, when set, is told of each token call and of each session
	// that must authorize again, for metrics and traces: smartotel.New
	// (package github.com/smartrefresh/smartrefresh/smartotel, a module of
	// its own) gives one for OpenTelemetry. It runs besides OnRefresh,
	// OnRefreshError and OnReauth. Without it no telemetry is produced.
	Observer Observer

	// discovered is the SMART configuration the Config was built from, if
	// any (SMARTConfiguration.Config).
	discovered *SMARTConfiguration
}

func (c Config) withDefaults() Config {
	if c.SessionKey == "" {
		c.SessionKey = DefaultSessionKey
	}
	if c.MaxLaunches == 0 {
		c.MaxLaunches = DefaultMaxLaunches
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.RefreshTimeout == 0 {
		c.RefreshTimeout = DefaultRefreshTimeout
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = DefaultResendAfter
	}
	if c.RefreshQueueTimeout == 0 {
		c.RefreshQueueTimeout = DefaultRefreshQueueTimeout
	}
	if c.AuthMethod == "" && c.ClientSecret == "" && c.PrivateKey == nil {
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
	c.Retry = c.Retry.withDefaults()
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
	if err := c.validateAuth(); err != nil {
		return err
	}
	if c.RevocationURL != "" {
		if err := checkEndpoint(c.RevocationURL); err != nil {
			return &ConfigError{Field: "RevocationURL", Reason: err.Error()}
		}
	}
	if c.RevocationStyle != RevokeRFC7009 && c.RevocationStyle != RevokeQueryGET {
		return &ConfigError{Field: "RevocationStyle", Reason: "unknown style " + c.RevocationStyle.String()}
	}
	if c.Leeway < 0 {
		return &ConfigError{Field: "Leeway", Reason: "must not be negative"}
	}
	if c.MaxLaunches < 0 {
		return &ConfigError{Field: "MaxLaunches", Reason: "must not be negative"}
	}
	if c.MaxConcurrentRefreshes < 0 {
		return &ConfigError{Field: "MaxConcurrentRefreshes", Reason: "must not be negative"}
	}
	if c.RefreshTimeout < 0 {
		return &ConfigError{Field: "RefreshTimeout", Reason: "must not be negative"}
	}
	if c.RefreshQueueTimeout < 0 {
		return &ConfigError{Field: "RefreshQueueTimeout", Reason: "must not be negative"}
	}
	if err := c.Retry.validate(); err != nil {
		return err
	}
	if _, err := parseBaseURLs(c.FHIRBaseURLs); err != nil {
		return err
	}
	for i, key := range c.EncryptionKeys {
		if err := checkEncryptionKey("EncryptionKeys", i, key); err != nil {
			return err
		}
	}
	for i, key := range c.DecryptionKeys {
		if err := checkEncryptionKey("DecryptionKeys", i, key); err != nil {
			return err
		}
	}
	return nil
}

// validateAuth checks that the client authentication is configured
// completely and unambiguously.
func (c Config) validateAuth() error {
	switch c.AuthMethod {
	case ClientSecretPost, ClientSecretBasic:
		if c.ClientSecret == "" {
			return &ConfigError{Field: "ClientSecret", Reason: "is required by AuthMethod " + string(c.AuthMethod)}
		}
		if c.PrivateKey != nil {
			return &ConfigError{Field: "PrivateKey", Reason: "is set but AuthMethod is " + string(c.AuthMethod) + "; choose private_key_jwt or remove the key"}
		}
	case None:
		if c.ClientSecret != "" {
			return &ConfigError{Field: "AuthMethod", Reason: "is none but a ClientSecret is set; choose client_secret_post or client_secret_basic"}
		}
		if c.PrivateKey != nil {
			return &ConfigError{Field: "AuthMethod", Reason: "is none but a PrivateKey is set; choose private_key_jwt"}
		}
	case PrivateKeyJWT:
		if c.PrivateKey == nil {
			return &ConfigError{Field: "PrivateKey", Reason: "is required by AuthMethod private_key_jwt"}
		}
		if c.ClientSecret != "" {
			return &ConfigError{Field: "ClientSecret", Reason: "must be empty with AuthMethod private_key_jwt"}
		}
		if c.KeyID == "" {
			return &ConfigError{Field: "KeyID", Reason: "is required by AuthMethod private_key_jwt (the kid of the key in the client's JWK Set)"}
		}
		if _, err := signingAlg(c.PrivateKey, c.SigningAlg); err != nil {
			return err
		}
	case "":
		if c.PrivateKey != nil {
			return &ConfigError{Field: "AuthMethod", Reason: "is required with a PrivateKey (private_key_jwt); it is never guessed"}
		}
		return &ConfigError{Field: "AuthMethod", Reason: "is required with a ClientSecret (client_secret_post or client_secret_basic); it is never guessed"}
	default:
		return &ConfigError{Field: "AuthMethod", Reason: "unsupported method " + string(c.AuthMethod)}
	}
	if c.AuthMethod != PrivateKeyJWT && (c.KeyID != "" || c.SigningAlg != "") {
		field := "KeyID"
		if c.KeyID == "" {
			field = "SigningAlg"
		}
		return &ConfigError{Field: field, Reason: "is only used with AuthMethod private_key_jwt"}
	}
	return c.validateDiscovered()
}

// validateDiscovered checks the client authentication against the SMART
// configuration the Config was built from, if any.
func (c Config) validateDiscovered() error {
	d := c.discovered
	if d == nil {
		return nil
	}
	if l := d.TokenEndpointAuthMethodsSupported; len(l) > 0 && !slices.Contains(l, c.AuthMethod) {
		return &ConfigError{Field: "AuthMethod", Reason: string(c.AuthMethod) +
			" is not in the server's token_endpoint_auth_methods_supported " + fmt.Sprint(l)}
	}
	if l := d.TokenEndpointAuthSigningAlgValuesSupported; c.AuthMethod == PrivateKeyJWT && len(l) > 0 {
		if alg, _ := signingAlg(c.PrivateKey, c.SigningAlg); !slices.Contains(l, alg) {
			return &ConfigError{Field: "SigningAlg", Reason: alg +
				" is not in the server's token_endpoint_auth_signing_alg_values_supported " + fmt.Sprint(l)}
		}
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

// redactedConfig is what fmt and log/slog see of a Config.
type redactedConfig struct {
	TokenURL        string
	RevocationURL   string
	RevocationStyle RevocationStyle
	ClientID        string
	ClientSecret    string
	AuthMethod      AuthMethod
	PrivateKey      string
	KeyID           string
	SigningAlg      string
	Scope           string
	SessionKey      string
	Leeway          time.Duration
	RefreshTimeout  time.Duration
}

func (c Config) redacted() redactedConfig {
	key := ""
	if c.PrivateKey != nil {
		key = redacted
	}
	return redactedConfig{
		TokenURL:        c.TokenURL,
		RevocationURL:   c.RevocationURL,
		RevocationStyle: c.RevocationStyle,
		ClientID:        c.ClientID,
		ClientSecret:    redact(c.ClientSecret),
		AuthMethod:      c.AuthMethod,
		PrivateKey:      key,
		KeyID:           c.KeyID,
		SigningAlg:      c.SigningAlg,
		Scope:           c.Scope,
		SessionKey:      c.SessionKey,
		Leeway:          c.Leeway,
		RefreshTimeout:  c.RefreshTimeout,
	}
}

// Format implements fmt.Formatter: every verb prints the Config's
// endpoints, client id and settings, with ClientSecret and PrivateKey
// replaced by [REDACTED] and the hooks (Sessions, HTTPClient, Logger, Now,
// OnRefresh, Observer) left out.
func (c Config) Format(f fmt.State, verb rune) {
	r := c.redacted()
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, "core.Config%+v", r)
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%+v", r)
	default:
		fmt.Fprintf(f, "{%s %s %s}", r.TokenURL, r.ClientID, r.AuthMethod)
	}
}

// String returns the Config's token URL, client id and authentication
// method; it never shows a secret.
func (c Config) String() string { return fmt.Sprint(c) }

// LogValue implements slog.LogValuer: logs show the Config without its
// secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_url", c.TokenURL),
		slog.String("revocation_url", c.RevocationURL),
		slog.String("client_id", c.ClientID),
		slog.String("auth_method", string(c.AuthMethod)),
		slog.Bool("client_secret", c.ClientSecret != ""),
		slog.Bool("private_key", c.PrivateKey != nil),
		slog.String("key_id", c.KeyID),
		slog.String("scope", c.Scope),
		slog.Any("fhir_base_urls", c.FHIRBaseURLs),
		slog.Int("encryption_keys", len(c.EncryptionKeys)),
		slog.Int("decryption_keys", len(c.DecryptionKeys)),
	)
}

// MarshalJSON encodes the Config as %+v prints it: without its secrets
// (ClientSecret, PrivateKey, EncryptionKeys, DecryptionKeys) and hooks.
func (c Config) MarshalJSON() ([]byte, error) { return jsonMarshal(c.redacted()) }
