// Package demo is what the three example apps (net/http, Echo and Gin)
// share: flags, the embedded mock SMART server, the library's SMART launch
// (core.Launcher), the FHIR call, the HTML page and the JSON views, logout
// with revocation, and the Prometheus metrics. Each example's main.go only
// wires these into its framework's routes.
package demo

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
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

	// TokenURL, AuthorizeURL and FHIRBase name a real SMART server: FHIRBase
	// is required, and the endpoints left empty are read from its
	// .well-known/smart-configuration. When TokenURL and FHIRBase are both
	// empty the embedded mock server is started and fills them.
	TokenURL     string
	AuthorizeURL string
	FHIRBase     string

	ClientID     string
	ClientSecret string // from SMART_CLIENT_SECRET; never printed
	Scopes       string

	// AuthMethodName is -auth-method: post, basic, none or private_key_jwt.
	// Empty means post with a client secret and none without.
	AuthMethodName string
	// PrivateKeyFile (-private-key) is the PEM file of the private_key_jwt
	// signing key, KeyID (-key-id) its kid in the client's JWK Set.
	// PrivateKey is the key, read from PrivateKeyFile or, with the embedded
	// server and no file, made for the run.
	PrivateKeyFile string
	KeyID          string
	PrivateKey     crypto.Signer

	// Issuers (-iss, repeatable) are the FHIR servers an EHR launch may
	// name as iss; default FHIRBase only.
	Issuers []string

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

	// mock is set by StartMock, which fills TokenURL: the config still
	// uses the embedded server.
	mock bool
}

// Embedded reports whether the config uses the embedded mock server:
// neither -token-url nor -fhir-base was given, or StartMock has started it.
func (c Config) Embedded() bool { return c.mock || c.TokenURL == "" && c.FHIRBase == "" }

// authMethods maps -auth-method to core's methods.
var authMethods = map[string]core.AuthMethod{
	"post": core.ClientSecretPost, "basic": core.ClientSecretBasic,
	"none": core.None, "private_key_jwt": core.PrivateKeyJWT,
}

// AuthMethod is how the client authenticates to the token endpoint, for
// the code exchange and every refresh: -auth-method, or by default
// client_secret_post for a confidential client and none for a public one.
func (c Config) AuthMethod() core.AuthMethod {
	if m, ok := authMethods[c.AuthMethodName]; ok {
		return m
	}
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
	fs.StringVar(&c.TokenURL, "token-url", "", "token endpoint of the real SMART server (default: from its .well-known/smart-configuration; without -fhir-base either, the embedded mock server is started)")
	fs.StringVar(&c.AuthorizeURL, "authorize-url", "", "authorization endpoint of the real SMART server (default: from its .well-known/smart-configuration)")
	fs.StringVar(&c.FHIRBase, "fhir-base", "", "FHIR base URL of a real SMART server, also sent as aud; its endpoints are discovered (default: start the embedded mock server)")
	fs.StringVar(&c.ClientID, "client-id", "", "registered client_id (default "+embeddedClientID+" with the embedded server)")
	fs.StringVar(&c.AuthMethodName, "auth-method", "", "client authentication: post, basic, none or private_key_jwt (default post with $"+SecretEnv+", none without)")
	fs.StringVar(&c.PrivateKeyFile, "private-key", "", "PEM file of the private_key_jwt signing key (RSA 2048+ or EC P-384)")
	fs.StringVar(&c.KeyID, "key-id", "", "kid of the private_key_jwt key in the client's registered JWK Set")
	fs.Func("iss", "a FHIR base URL an EHR launch may name as iss (repeatable; default -fhir-base)", func(s string) error {
		for _, iss := range strings.Split(s, ",") {
			if iss = strings.TrimSpace(iss); iss != "" {
				c.Issuers = append(c.Issuers, iss)
			}
		}
		return nil
	})
	fs.StringVar(&c.Scopes, "scopes", DefaultScopes, "scopes to request, separated by spaces")
	fs.StringVar(&c.RevokeURL, "revoke-url", "", "revocation endpoint of the real server, for Log out (with -token-url; without it Log out only clears the session)")
	revokeStyle := fs.String("revoke-style", "rfc7009", "revocation request: rfc7009 (POST token=…, RFC 7009) or get (GET ?token=…, as Health Gorilla's /oauth/cancel)")
	fs.BoolVar(&c.Metrics, "metrics", false, "export OpenTelemetry metrics in the Prometheus format at /metrics")
	fs.DurationVar(&c.TokenTTL, "token-ttl", 30*time.Second, "access token lifetime of the embedded server")
	fs.StringVar(&c.RedisAddr, "redis", "", "Redis address (host:port) for the sessions and the refresh Coordinator, to run several replicas")
	fs.StringVar(&c.PostgresURL, "postgres", "", "PostgreSQL URL (postgres://…) for the sessions and the refresh Coordinator, to run several replicas")
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage of the %s demo:\n\n", name)
		fmt.Fprintf(output, "With -fhir-base, the endpoints of that SMART server are read from its .well-known/smart-configuration\n")
		fmt.Fprintf(output, "unless given; without it (nor -token-url), an embedded mock SMART server is started.\n")
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
	if _, ok := authMethods[c.AuthMethodName]; !ok && c.AuthMethodName != "" {
		return Config{}, fmt.Errorf("-auth-method must be post, basic, none or private_key_jwt, not %q", c.AuthMethodName)
	}
	switch {
	case strings.TrimSpace(c.Scopes) == "":
		return Config{}, errors.New("-scopes must not be empty")
	case c.Embedded() && (c.AuthorizeURL != "" || c.RevokeURL != "" || len(c.Issuers) > 0):
		return Config{}, errors.New("-authorize-url, -iss and -revoke-url name a real server: give its -fhir-base too (without it the embedded mock server is used)")
	case c.Embedded():
		if c.TokenTTL <= 0 {
			return Config{}, errors.New("-token-ttl must be positive")
		}
		if c.ClientID == "" {
			c.ClientID = embeddedClientID
		}
		if c.ClientSecret == "" && (c.AuthMethodName == "" || c.AuthMethodName == "post" || c.AuthMethodName == "basic") {
			c.ClientSecret = embeddedClientSecret
		}
	default:
		var missing []string
		for _, f := range []struct{ name, value string }{
			{"-fhir-base", c.FHIRBase}, {"-client-id", c.ClientID},
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
			return Config{}, fmt.Errorf("a real SMART server needs %s", list)
		}
		if c.RevokeURL == "" && c.RevokeStyle != core.RevokeRFC7009 {
			return Config{}, errors.New("-revoke-style get needs -revoke-url")
		}
		c.FHIRBase = strings.TrimRight(c.FHIRBase, "/")
	}
	if err := c.loadKey(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// loadKey checks the client authentication flags and reads the
// private_key_jwt key. The embedded server gets a key made for the run
// when no -private-key is given.
func (c *Config) loadKey() error {
	method := c.AuthMethod()
	switch {
	case (method == core.None || method == core.PrivateKeyJWT) && c.ClientSecret != "":
		return fmt.Errorf("-auth-method %s takes no client secret: unset $%s", c.AuthMethodName, SecretEnv)
	case (method == core.ClientSecretPost || method == core.ClientSecretBasic) && c.ClientSecret == "":
		return fmt.Errorf("-auth-method %s needs the client secret in $%s", c.AuthMethodName, SecretEnv)
	case method != core.PrivateKeyJWT && (c.PrivateKeyFile != "" || c.KeyID != ""):
		return errors.New("-private-key and -key-id go with -auth-method private_key_jwt")
	case method != core.PrivateKeyJWT:
		return nil
	case c.PrivateKeyFile == "" && !c.Embedded():
		return errors.New("-auth-method private_key_jwt needs -private-key FILE and -key-id")
	case c.KeyID == "" && !c.Embedded():
		return errors.New("-auth-method private_key_jwt needs -key-id (the kid of the key in the client's JWK Set)")
	}
	if c.KeyID == "" {
		c.KeyID = "demo-key"
	}
	if c.PrivateKeyFile == "" {
		key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return err
		}
		c.PrivateKey = key
		return nil
	}
	pem, err := os.ReadFile(c.PrivateKeyFile)
	if err != nil {
		return fmt.Errorf("-private-key: %w", err)
	}
	if c.PrivateKey, err = core.ParsePrivateKeyPEM(pem); err != nil {
		return fmt.Errorf("-private-key %s: %w", c.PrivateKeyFile, err)
	}
	return nil
}
