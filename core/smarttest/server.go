// Package smarttest provides a strict mock SMART on FHIR authorization server
// with a tiny FHIR server, for tests and demos, in the spirit of
// net/http/httptest.
//
// The server behaves like a strict real one: it enforces the configured client
// authentication method, gives codes only to registered redirect URIs
// (Options.RedirectURIs), requires PKCE (S256), makes authorization codes
// single-use and rotates refresh tokens with reuse detection as RFC 9700
// describes: presenting a refresh token that has already been rotated away
// revokes the whole grant. When openid is granted, the code exchange and
// every refresh answer a signed OpenID Connect id_token (RS256, key published
// at JWKSURL, issuer URL) with a fhirUser claim.
package smarttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// Options configures a Server. The zero value is a confidential client using
// client_secret_post with rotating refresh tokens.
type Options struct {
	// ClientID is the only client the server knows. Default "smart-client".
	ClientID string
	// ClientSecret is the client's secret. Default "smart-secret". It is
	// ignored when AuthMethod is core.None or core.PrivateKeyJWT.
	ClientSecret string
	// AuthMethod is the only client authentication method the token and
	// revocation endpoints accept. Default core.ClientSecretPost.
	AuthMethod core.AuthMethod
	// ClientPublicKey is the client's registered public key, an
	// *rsa.PublicKey (RS384) or an *ecdsa.PublicKey on P-384 (ES384); it is
	// required with core.PrivateKeyJWT. The server then checks every client
	// assertion strictly: client_assertion_type, the signature (RS384 or
	// ES384 only), kid, typ JWT, iss = sub = ClientID, aud = TokenURL, an exp
	// in the future and at most five minutes ahead, and a jti never seen
	// before.
	ClientPublicKey crypto.PublicKey
	// ClientKeyID is the kid of ClientPublicKey. Default "smart-client-key".
	ClientKeyID string
	// AccessTokenTTL is the lifetime of access tokens, sent as expires_in.
	// Default one hour.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of each refresh token from the moment
	// it is issued. Zero means refresh tokens never expire.
	RefreshTokenTTL time.Duration
	// ReuseGraceWindow, when positive, lets a rotated refresh token be
	// presented again within that time after its rotation, as long as the
	// token it was rotated for has not been used: the resend of a client
	// whose answer was lost, as Amazon Cognito (RetryGracePeriodSeconds,
	// 0–60 s), Ory Hydra, Connect2id (5 s by default), Okta, Auth0 and
	// Asgardeo allow. The server then answers as to a refresh with the
	// token it was rotated for, which is rotated in turn; GraceResends
	// counts such answers. Zero, the default, is a strict server: any
	// resend is a reuse that revokes the grant.
	ReuseGraceWindow time.Duration
	// NoRotation makes refresh answers omit refresh_token; the refresh token
	// then stays valid.
	NoRotation bool
	// NoRefreshToken makes the server never issue refresh tokens.
	NoRefreshToken bool
	// OmitContextOnRefresh makes refresh answers omit the launch context
	// (patient, encounter, need_patient_banner, smart_style_url, fhirContext).
	OmitContextOnRefresh bool
	// Patient is the id of the launch context patient, who exists in the
	// FHIR server as Amy V. Shaw. Default "123".
	Patient string
	// LaunchPatients gives EHR launches a patient each: an authorization
	// request whose launch parameter is a key of the map gets the patient
	// it names (an id) as its grant's launch context, instead of Patient.
	// Each such patient exists in the FHIR server, with the family name
	// "Patient-<id>". Requests with another launch, or none, get Patient.
	LaunchPatients map[string]string
	// Encounter is the id of the launch context encounter, if any.
	Encounter string
	// Scope is granted when an authorization request has no scope, and by
	// Grant. Default "launch/patient patient/*.read openid fhirUser
	// offline_access". As on SMART servers, refresh tokens are issued only
	// for a scope with offline_access or online_access.
	Scope string
	// Now is the clock behind every expiry decision. Default time.Now.
	Now func() time.Time
	// AccessOnRefresh is what a refresh does to the grant's earlier access
	// tokens. Default AccessRevokedOnRefresh: they get 401 at once.
	AccessOnRefresh AccessOnRefresh
	// RevokeRotated is what revoking a rotated refresh token (or an access
	// token a refresh revoked) does. Default RevokeRotatedNothing: nothing,
	// as RFC 7009 section 2.2 allows; RevokeRotatedGrant revokes the grant.
	RevokeRotated RotatedRevocation
	// PKCEFailure is what a code exchange with a wrong or missing
	// code_verifier does to the code. Default PKCEFailureBurnsCode.
	PKCEFailure PKCEFailure
	// TokenType is the token_type of token answers: "Bearer" (the default,
	// as RFC 6750 and SMART write it), "bearer" (as some servers answer,
	// and as SMART's refresh section writes it) or "BEARER". The FHIR
	// server accepts the Authorization scheme in any case, as RFC 9110
	// section 11.1 requires.
	TokenType string
	// RedirectURIs are the client's registered redirection URIs, each an
	// absolute http(s) URL without fragment. The authorization endpoint
	// accepts a redirect_uri only if it is one of them, compared as exact
	// strings (RFC 9700 section 4.1.3), and answers any other with a 400
	// error page, never a redirect (RFC 6749 section 4.1.2.1), as real
	// servers do. None registered means every authorization request is
	// refused. Grant does not need them.
	RedirectURIs []string
	// FHIRUser is the signed-in user, a FHIR reference relative to the FHIR
	// base. It is the sub of id_tokens and, absolute, their fhirUser claim.
	// Default "Patient/" + Patient, a resource the FHIR server has.
	FHIRUser string
	// IDTokenClaims, if set, edits the claims of every id_token the server
	// signs (iss, sub, aud, exp, iat, auth_time, nonce, fhirUser, as JSON
	// decodes them), for testing a client's id_token validation: delete
	// "nonce", add "azp", point "fhirUser" elsewhere.
	IDTokenClaims func(claims map[string]any)
	// Logf, if set, receives a line for each notable event, for example
	// t.Logf. Tokens are never logged, only a short hash of them.
	Logf func(format string, args ...any)
}

// DefaultScope is the scope granted when neither the request nor
// Options.Scope name one.
const DefaultScope = "launch/patient patient/*.read openid fhirUser offline_access"

func (o Options) withDefaults() Options {
	if o.ClientID == "" {
		o.ClientID = "smart-client"
	}
	if o.AuthMethod == "" {
		o.AuthMethod = core.ClientSecretPost
	}
	switch o.AuthMethod {
	case core.ClientSecretPost, core.ClientSecretBasic:
		if o.ClientSecret == "" {
			o.ClientSecret = "smart-secret"
		}
	case core.None:
		o.ClientSecret = ""
	case core.PrivateKeyJWT:
		o.ClientSecret = ""
		switch k := o.ClientPublicKey.(type) {
		case *rsa.PublicKey:
		case *ecdsa.PublicKey:
		default:
			panic(fmt.Sprintf("smarttest: private_key_jwt needs an *rsa.PublicKey or *ecdsa.PublicKey ClientPublicKey, not %T", k))
		}
		if o.ClientKeyID == "" {
			o.ClientKeyID = "smart-client-key"
		}
	default:
		panic(fmt.Sprintf("smarttest: unknown AuthMethod %q", o.AuthMethod))
	}
	if o.AccessTokenTTL <= 0 {
		o.AccessTokenTTL = time.Hour
	}
	if o.Patient == "" {
		o.Patient = "123"
	}
	if o.Scope == "" {
		o.Scope = DefaultScope
	}
	if o.TokenType == "" {
		o.TokenType = "Bearer"
	}
	if !validTokenType(o.TokenType) {
		panic(fmt.Sprintf("smarttest: TokenType %q is not a spelling of Bearer", o.TokenType))
	}
	if o.AccessOnRefresh != AccessRevokedOnRefresh && o.AccessOnRefresh != AccessKeptOnRefresh {
		panic(fmt.Sprintf("smarttest: unknown %v", o.AccessOnRefresh))
	}
	if o.RevokeRotated != RevokeRotatedNothing && o.RevokeRotated != RevokeRotatedGrant {
		panic(fmt.Sprintf("smarttest: unknown %v", o.RevokeRotated))
	}
	if o.PKCEFailure != PKCEFailureBurnsCode && o.PKCEFailure != PKCEFailureKeepsCode {
		panic(fmt.Sprintf("smarttest: unknown %v", o.PKCEFailure))
	}
	if o.FHIRUser == "" {
		o.FHIRUser = "Patient/" + o.Patient
	}
	o.RedirectURIs = slices.Clone(o.RedirectURIs)
	o.LaunchPatients = maps.Clone(o.LaunchPatients)
	for _, u := range o.RedirectURIs {
		if !absoluteURL(u) {
			panic(fmt.Sprintf("smarttest: redirect URI %q is not an absolute http(s) URL without fragment", u))
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// hook is middleware around an endpoint, for fault injection. It may answer
// the request itself, or call next to let the server act, possibly with a
// ResponseWriter that discards the answer.
type hook func(w http.ResponseWriter, r *http.Request, next http.Handler)

// Server is a mock SMART on FHIR authorization server and FHIR server. It
// serves
//
//	GET  /authorize                          authorization code with PKCE S256
//	POST /token                              authorization_code, refresh_token
//	POST /revoke                             RFC 7009 token revocation
//	GET  /oauth/cancel?token=…               revocation as Health Gorilla documents it
//	GET  /.well-known/smart-configuration    also under /fhir
//	GET  /.well-known/openid-configuration   OpenID Connect discovery
//	GET  /jwks                               the id_token signing key (JWKS)
//	GET  /smart-style.json                   the smart_style_url
//	GET  /fhir/metadata                      CapabilityStatement, no token needed
//	GET  /fhir/{type}/{id}                   read, e.g. Patient/123
//	GET  /fhir/{type}?_id=…&name=…           search, answering a Bundle
//	POST /fhir/{type}                        create, echoing the resource with an id
//
// Every FHIR request but metadata needs a valid Bearer access token.
type Server struct {
	URL          string // base URL, e.g. http://127.0.0.1:PORT
	AuthorizeURL string // URL + "/authorize"
	TokenURL     string // URL + "/token"
	RevokeURL    string // URL + "/revoke" (RFC 7009)
	CancelURL    string // URL + "/oauth/cancel" (GET ?token=…)
	FHIRBaseURL  string // URL + "/fhir"
	JWKSURL      string // URL + "/jwks", the jwks_uri of the id_token signing key (one RSA key per process, a kid per server)

	opts    Options
	handler http.Handler
	ts      *httptest.Server
	kidOnce sync.Once
	kid     string

	mu            sync.Mutex
	codes         map[string]*authCode
	access        map[string]*accessToken
	refresh       map[string]*refreshToken
	resources     map[string]map[string]any // "Type/id" → resource
	grants        int
	tokenHook     hook
	revokeHook    hook
	fhirHook      hook
	assertionIDs  map[string]time.Time // jti of accepted client assertions → exp
	tokenCalls    int
	revokeCalls   int
	refreshCalls  int
	reuses        int
	graceReuses   int
	revokedGrants int
	fhirCalls     int
}

// NewServer starts and returns a Server listening on a loopback address, as
// httptest.NewServer does. The caller should call Close when finished.
func NewServer(opts Options) *Server {
	ts := httptest.NewUnstartedServer(nil)
	s := New("http://"+ts.Listener.Addr().String(), opts)
	ts.Config.Handler = s.handler
	ts.Start()
	s.ts = ts
	return s
}

// New returns a Server that does not listen: it answers as if it were
// reachable at baseURL (for example "http://localhost:9000"), and the caller
// serves its Handler there.
func New(baseURL string, opts Options) *Server {
	s := &Server{
		URL:          baseURL,
		AuthorizeURL: baseURL + "/authorize",
		TokenURL:     baseURL + "/token",
		RevokeURL:    baseURL + "/revoke",
		CancelURL:    baseURL + "/oauth/cancel",
		FHIRBaseURL:  baseURL + "/fhir",
		JWKSURL:      baseURL + "/jwks",
		opts:         opts.withDefaults(),
		assertionIDs: map[string]time.Time{},
		codes:        map[string]*authCode{},
		access:       map[string]*accessToken{},
		refresh:      map[string]*refreshToken{},
		resources:    map[string]map[string]any{},
	}
	s.seedResources()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", s.serveAuthorize)
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /revoke", s.serveRevoke)
	mux.HandleFunc("GET /oauth/cancel", s.serveRevoke)
	mux.HandleFunc("GET /.well-known/smart-configuration", s.serveConfiguration)
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", s.serveConfiguration)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveOpenIDConfiguration)
	mux.HandleFunc("GET /jwks", s.serveJWKS)
	mux.HandleFunc("GET /smart-style.json", s.serveStyle)
	mux.HandleFunc("/fhir/", s.serveFHIR)
	s.handler = mux
	return s
}

// Handler returns the handler that serves every endpoint of s.
func (s *Server) Handler() http.Handler { return s.handler }

// Close shuts down the server started by NewServer and blocks until all
// outstanding requests on it have completed. It does nothing for a Server
// made by New.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// Client returns an HTTP client configured for making requests to s, as
// httptest.Server.Client does. For a Server made by New it returns
// http.DefaultClient.
func (s *Server) Client() *http.Client {
	if s.ts != nil {
		return s.ts.Client()
	}
	return http.DefaultClient
}

// Options returns the options in effect, with defaults filled in.
func (s *Server) Options() Options { return s.opts }

// SetTokenHook installs h around the token endpoint, for fault injection;
// nil removes it. h may answer itself (500, 503 with Retry-After, garbage, a
// delay), or call next to let the server act, for example with an
// httptest.ResponseRecorder to lose the answer. next reads the request body,
// so a hook that reads it must restore it. TokenCalls and RefreshCalls count
// requests before they reach the hook.
func (s *Server) SetTokenHook(h func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenHook = h
}

// SetRevokeHook installs h around the revocation endpoints, RevokeURL and
// CancelURL; nil removes it. RevokeCalls counts requests before they reach
// the hook.
func (s *Server) SetRevokeHook(h func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokeHook = h
}

// SetFHIRHook installs h around the FHIR endpoints under FHIRBaseURL; nil
// removes it. FHIRCalls counts requests before they reach the hook.
func (s *Server) SetFHIRHook(h func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fhirHook = h
}

// TokenCalls returns the number of POST requests to the token endpoint, of
// any grant type and outcome.
func (s *Server) TokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls
}

// RefreshCalls returns the number of grant_type=refresh_token requests to the
// token endpoint.
func (s *Server) RefreshCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshCalls
}

// RevokeCalls returns the number of requests to the revocation endpoints,
// RevokeURL and CancelURL, of any outcome.
func (s *Server) RevokeCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeCalls
}

// Reuses returns the number of times a refresh token was presented after it
// had been rotated away. Each one revokes its grant.
func (s *Server) Reuses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reuses
}

// GraceResends returns the number of rotated refresh tokens accepted again
// within Options.ReuseGraceWindow.
func (s *Server) GraceResends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.graceReuses
}

// RevokedGrants returns the number of grants revoked, whether by refresh
// token reuse, authorization code reuse or the revocation endpoint.
func (s *Server) RevokedGrants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokedGrants
}

// FHIRCalls returns the number of requests to the FHIR endpoints, metadata
// included.
func (s *Server) FHIRCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fhirCalls
}

// ExpireAccessTokens makes every access token issued so far expired, so the
// FHIR server answers 401 to them. Refresh tokens are not touched.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.access {
		a.expired = true
	}
}

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf("smarttest: "+format, args...)
	}
}

// fingerprint returns a short hash of a token, safe to log.
func fingerprint(token string) string {
	if token == "" {
		return "-"
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}
