// Package demo is what the three example apps (net/http, Echo and Gin)
// share: flags, the embedded mock SMART server, the OAuth authorization-code
// flow with PKCE, the FHIR call, the HTML page and the JSON views, logout
// with revocation, and the Prometheus metrics. Each example's main.go only
// wires these into its framework's routes.
package demo

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// DefaultScopes are the scopes the demo asks for: a standalone patient
// launch with a refresh token.
const DefaultScopes = "launch/patient patient/*.read openid fhirUser offline_access"

// SecretEnv is the environment variable holding the client secret. It is
// read from the environment, never from a flag, so that it stays out of
// shell history and process listings.
const SecretEnv = "SMART_CLIENT_SECRET"

// Embedded-server client credentials, used when no -token-url is given.
const (
	embeddedClientID     = "smart-client"
	embeddedClientSecret = "smart-secret"
)

// Config is the demo's configuration, from flags and the environment.
type Config struct {
	// Addr is the address the app listens on.
	Addr string
	// RedirectURL is the OAuth redirect URI; empty means derived from the
	// address the app listens on.
	RedirectURL string

	// TokenURL, AuthorizeURL and FHIRBase name a real SMART server. When
	// TokenURL is empty the embedded mock server is started and fills them.
	TokenURL     string
	AuthorizeURL string
	FHIRBase     string

	ClientID     string
	ClientSecret string // from SMART_CLIENT_SECRET; never printed
	Scopes       string

	// RevokeURL is the revocation endpoint the "Log out" button revokes
	// the session's tokens at, in RevokeStyle. With the embedded server
	// StartMock fills it; for a real server it is optional, and when empty
	// logging out only clears the session.
	RevokeURL   string
	RevokeStyle core.RevocationStyle

	// Metrics makes the app export its OpenTelemetry metrics in the
	// Prometheus format at /metrics.
	Metrics bool

	// TokenTTL is the access token lifetime of the embedded mock server.
	TokenTTL time.Duration

	// RedisAddr (-redis) or PostgresURL (-postgres) name the engine that
	// keeps the sessions and coordinates refreshes, so that several demo
	// processes can serve the same users; both empty: sessions in memory,
	// one process.
	RedisAddr   string
	PostgresURL string
}

// Embedded reports whether the config asks for the embedded mock server.
func (c Config) Embedded() bool { return c.TokenURL == "" }

// AuthMethod is how the client authenticates to the token endpoint:
// client_secret_post for a confidential client, none for a public one. The
// OAuth flow uses the matching oauth2.AuthStyleInParams.
func (c Config) AuthMethod() core.AuthMethod {
	if c.ClientSecret != "" {
		return core.ClientSecretPost
	}
	return core.None
}

// ParseFlags reads the demo's flags from args and the client secret from
// getenv. It returns flag.ErrHelp when -h or -help was given.
func ParseFlags(name string, args []string, getenv func(string) string, output io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&c.RedirectURL, "redirect-url", "", "OAuth redirect URI (default http://ADDR/callback)")
	fs.StringVar(&c.TokenURL, "token-url", "", "token endpoint of a real SMART server (default: start the embedded mock server)")
	fs.StringVar(&c.AuthorizeURL, "authorize-url", "", "authorization endpoint of the real SMART server (with -token-url)")
	fs.StringVar(&c.FHIRBase, "fhir-base", "", "FHIR base URL of the real server, also sent as aud (with -token-url)")
	fs.StringVar(&c.ClientID, "client-id", "", "registered client_id (default "+embeddedClientID+" with the embedded server)")
	fs.StringVar(&c.Scopes, "scopes", DefaultScopes, "scopes to request, separated by spaces")
	fs.StringVar(&c.RevokeURL, "revoke-url", "", "revocation endpoint of the real server, for Log out (with -token-url; without it Log out only clears the session)")
	revokeStyle := fs.String("revoke-style", "rfc7009", "revocation request: rfc7009 (POST token=…, RFC 7009) or get (GET ?token=…, as Health Gorilla's /oauth/cancel)")
	fs.BoolVar(&c.Metrics, "metrics", false, "export OpenTelemetry metrics in the Prometheus format at /metrics")
	fs.DurationVar(&c.TokenTTL, "token-ttl", 30*time.Second, "access token lifetime of the embedded server")
	fs.StringVar(&c.RedisAddr, "redis", "", "Redis address (host:port) for the sessions and the refresh Coordinator, to run several replicas")
	fs.StringVar(&c.PostgresURL, "postgres", "", "PostgreSQL URL (postgres://…) for the sessions and the refresh Coordinator, to run several replicas")
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage of the %s demo:\n\n", name)
		fmt.Fprintf(output, "Without -token-url, an embedded mock SMART server is started.\n")
		fmt.Fprintf(output, "The client secret, if any, is read from $%s.\n\nFlags:\n", SecretEnv)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.ClientSecret = getenv(SecretEnv)
	switch *revokeStyle {
	case "rfc7009":
		c.RevokeStyle = core.RevokeRFC7009
	case "get":
		c.RevokeStyle = core.RevokeQueryGET
	default:
		return Config{}, fmt.Errorf("-revoke-style must be rfc7009 or get, not %q", *revokeStyle)
	}

	if c.RedisAddr != "" && c.PostgresURL != "" {
		return Config{}, errors.New("-redis and -postgres: give one")
	}
	switch {
	case strings.TrimSpace(c.Scopes) == "":
		return Config{}, errors.New("-scopes must not be empty")
	case c.Embedded() && (c.AuthorizeURL != "" || c.FHIRBase != "" || c.RevokeURL != ""):
		return Config{}, errors.New("-authorize-url, -fhir-base and -revoke-url name a real server: give its -token-url too (without -token-url the embedded mock server is used)")
	case c.Embedded():
		if c.TokenTTL <= 0 {
			return Config{}, errors.New("-token-ttl must be positive")
		}
		if c.ClientID == "" {
			c.ClientID = embeddedClientID
		}
		if c.ClientSecret == "" {
			c.ClientSecret = embeddedClientSecret
		}
	default:
		var missing []string
		for _, f := range []struct{ name, value string }{
			{"-authorize-url", c.AuthorizeURL}, {"-fhir-base", c.FHIRBase}, {"-client-id", c.ClientID},
		} {
			if f.value == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			last := len(missing) - 1
			list := missing[last]
			if last > 0 {
				list = strings.Join(missing[:last], ", ") + " and " + list
			}
			return Config{}, fmt.Errorf("-token-url needs %s too", list)
		}
		if c.RevokeURL == "" && c.RevokeStyle != core.RevokeRFC7009 {
			return Config{}, errors.New("-revoke-style get needs -revoke-url")
		}
		c.FHIRBase = strings.TrimRight(c.FHIRBase, "/")
	}
	return c, nil
}
