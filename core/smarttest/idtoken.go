package smarttest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signingKey is the RSA key every Server of the process signs id_tokens
// with, each under its own kid (see Server.keyID). It is made on first use:
// an RSA key takes tens of milliseconds to generate, too long to spend on
// every test server.
var signingKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("smarttest: generating the id_token signing key: " + err.Error())
	}
	return k
})

// idTokenAlg is the id_token signing algorithm: RS256, the one OpenID
// Connect requires every relying party to support, and the only one
// github.com/coreos/go-oidc/v3 accepts without configuration.
const idTokenAlg = jose.RS256

// keyID returns the kid of the server's signing key: a hash of the server's
// URL and the key's thumbprint, so that no two servers publish the same kid.
func (s *Server) keyID() string {
	s.kidOnce.Do(func() {
		jwk := jose.JSONWebKey{Key: &signingKey().PublicKey}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			panic("smarttest: thumbprint of the signing key: " + err.Error())
		}
		sum := sha256.Sum256(append([]byte(s.URL+"\x00"), tp...))
		s.kid = base64.RawURLEncoding.EncodeToString(sum[:12])
	})
	return s.kid
}

// jwks returns the JSON Web Key Set the server publishes at JWKSURL.
func (s *Server) jwks() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &signingKey().PublicKey,
		KeyID:     s.keyID(),
		Algorithm: string(idTokenAlg),
		Use:       "sig",
	}}}
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.jwks())
}

// idTokenClaims are the claims of an id_token (OpenID Connect Core 1.0
// section 2, SMART App Launch "fhirUser").
type idTokenClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	AuthTime int64  `json:"auth_time,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
	FHIRUser string `json:"fhirUser,omitempty"`
}

// openID reports whether scope grants an id_token.
func openID(scope string) bool { return slices.Contains(strings.Fields(scope), "openid") }

// fhirUser returns the fhirUser claim: the absolute URL of Options.FHIRUser.
func (s *Server) fhirUser() string { return s.FHIRBaseURL + "/" + s.opts.FHIRUser }

// idToken returns a signed id_token for a grant of scope authorized at
// authTime, issued at now, carrying nonce if not empty. The user is
// Options.FHIRUser; the fhirUser claim is sent when scope has fhirUser.
func (s *Server) idToken(scope string, authTime, now time.Time, nonce string) (string, error) {
	c := idTokenClaims{
		Issuer:   s.URL,
		Subject:  s.opts.FHIRUser,
		Audience: s.opts.ClientID,
		Expiry:   now.Add(s.opts.AccessTokenTTL).Unix(),
		IssuedAt: now.Unix(),
		AuthTime: authTime.Unix(),
		Nonce:    nonce,
	}
	if slices.Contains(strings.Fields(scope), "fhirUser") {
		c.FHIRUser = s.fhirUser()
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	if edit := s.opts.IDTokenClaims; edit != nil {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			return "", err
		}
		edit(m)
		if payload, err = json.Marshal(m); err != nil {
			return "", err
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: idTokenAlg, Key: signingKey()},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), s.keyID()))
	if err != nil {
		return "", fmt.Errorf("smarttest: id_token signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("smarttest: signing the id_token: %w", err)
	}
	return jws.CompactSerialize()
}

// openIDConfiguration is the OpenID Provider metadata (OpenID Connect
// Discovery 1.0) served at /.well-known/openid-configuration, where OpenID
// Connect libraries look for the jwks_uri.
type openIDConfiguration struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
}

func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	c := s.configuration()
	writeJSON(w, http.StatusOK, openIDConfiguration{
		Issuer:                            c.Issuer,
		AuthorizationEndpoint:             c.AuthorizationEndpoint,
		TokenEndpoint:                     c.TokenEndpoint,
		RevocationEndpoint:                c.RevocationEndpoint,
		JWKSURI:                           c.JWKSURI,
		ResponseTypesSupported:            c.ResponseTypesSupported,
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  c.IDTokenSigningAlgs,
		ScopesSupported:                   c.ScopesSupported,
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"},
		GrantTypesSupported:               c.GrantTypesSupported,
		TokenEndpointAuthMethodsSupported: c.TokenEndpointAuthMethodsSupported,
		CodeChallengeMethodsSupported:     c.CodeChallengeMethodsSupported,
	})
}
