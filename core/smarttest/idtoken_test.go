package smarttest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// idClaims are the id_token claims the tests look at.
type idClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time"`
	Nonce    *string  `json:"nonce"`
	FHIRUser *string  `json:"fhirUser"`
}

// audience is an aud claim, a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// verifier discovers s as go-oidc does, from s.URL, and returns an id_token
// verifier for the client that trusts clk.
func verifier(t *testing.T, s *smarttest.Server, clk *clock) *oidc.IDTokenVerifier {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), s.Client())
	p, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery of %s: %v", s.URL, err)
	}
	return p.VerifierContext(ctx, &oidc.Config{ClientID: s.Options().ClientID, Now: clk.Now})
}

// verify checks raw with v and returns its claims.
func verify(t *testing.T, v *oidc.IDTokenVerifier, s *smarttest.Server, raw string) idClaims {
	t.Helper()
	if raw == "" {
		t.Fatal("no id_token")
	}
	tok, err := v.Verify(oidc.ClientContext(context.Background(), s.Client()), raw)
	if err != nil {
		t.Fatalf("go-oidc rejects the id_token: %v", err)
	}
	var c idClaims
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIDToken: with openid granted, the code exchange and every refresh
// answer an id_token that go-oidc, discovering the server from its issuer,
// accepts, with the standard claims, fhirUser, and the nonce at the code
// exchange only (OpenID Connect Core 1.0 section 12.2).
func TestIDToken(t *testing.T) {
	clk := newClock()
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, Now: clk.Now, AccessTokenTTL: 10 * time.Minute})
	defer s.Close()
	v := verifier(t, s, clk)

	verifierStr, challenge := pkce()
	q := authorizeQuery(s, challenge)
	q.Set("nonce", "n-0S6_WzA2Mj")
	status, back := authorize(t, s, q)
	if status != http.StatusFound {
		t.Fatalf("authorize: %d", status)
	}
	authTime := clk.Now()
	clk.Advance(5 * time.Second)
	first := exchange(t, s, back.Get("code"), verifierStr)
	wantStatus(t, first, http.StatusOK)

	c := verify(t, v, s, first.str("id_token"))
	if c.Issuer != s.URL || len(c.Audience) != 1 || c.Audience[0] != "smart-client" || c.Subject != "Patient/123" {
		t.Errorf("iss %q aud %q sub %q", c.Issuer, c.Audience, c.Subject)
	}
	if c.IssuedAt != clk.Now().Unix() || c.Expiry != clk.Now().Add(10*time.Minute).Unix() || c.AuthTime != authTime.Unix() {
		t.Errorf("iat %d exp %d auth_time %d, want %d %d %d", c.IssuedAt, c.Expiry, c.AuthTime,
			clk.Now().Unix(), clk.Now().Add(10*time.Minute).Unix(), authTime.Unix())
	}
	if c.Nonce == nil || *c.Nonce != "n-0S6_WzA2Mj" {
		t.Errorf("nonce %v, want the authorization request's", c.Nonce)
	}
	if c.FHIRUser == nil || *c.FHIRUser != s.FHIRBaseURL+"/Patient/123" {
		t.Errorf("fhirUser %v, want %s/Patient/123", c.FHIRUser, s.FHIRBaseURL)
	}
	// The fhirUser names a resource the FHIR server has.
	wantStatus(t, fhirGet(t, s, first.str("access_token"), strings.TrimPrefix(*c.FHIRUser, s.FHIRBaseURL)), http.StatusOK)

	clk.Advance(time.Minute)
	second := refresh(t, s, first.str("refresh_token"))
	wantStatus(t, second, http.StatusOK)
	r := verify(t, v, s, second.str("id_token"))
	if r.Issuer != c.Issuer || r.Subject != c.Subject || r.AuthTime != c.AuthTime || r.IssuedAt != clk.Now().Unix() {
		t.Errorf("refresh id_token iss %q sub %q auth_time %d iat %d", r.Issuer, r.Subject, r.AuthTime, r.IssuedAt)
	}
	if r.Nonce != nil {
		t.Errorf("refresh id_token has nonce %q", *r.Nonce)
	}

	// Expired by the client's clock: go-oidc refuses it.
	clk.Advance(11 * time.Minute)
	var expired *oidc.TokenExpiredError
	if _, err := v.Verify(context.Background(), second.str("id_token")); !errors.As(err, &expired) {
		t.Errorf("expired id_token: %v, want *oidc.TokenExpiredError", err)
	}
}

// TestIDTokenOnlyWithOpenID: the id_token follows the granted scope: none
// without openid, no fhirUser claim without fhirUser, none on a refresh
// that narrows the scope to leave openid out; Grant carries one too.
func TestIDTokenOnlyWithOpenID(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name, scope, refreshScope string
		idToken, fhirUser         bool
		refreshIDToken            bool
	}{
		{"openid fhirUser", smarttest.DefaultScope, "", true, true, true},
		{"openid only", "patient/*.read openid offline_access", "", true, false, true},
		{"no openid", "patient/*.read fhirUser offline_access", "", false, false, false},
		{"refresh without openid", smarttest.DefaultScope, "patient/*.read offline_access", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, Now: clk.Now})
			defer s.Close()
			v := verifier(t, s, clk)
			verifierStr, challenge := pkce()
			q := authorizeQuery(s, challenge)
			q.Set("scope", tt.scope)
			_, back := authorize(t, s, q)
			first := exchange(t, s, back.Get("code"), verifierStr)
			wantStatus(t, first, http.StatusOK)
			if got := first.str("id_token") != ""; got != tt.idToken {
				t.Fatalf("id_token sent: %v, want %v", got, tt.idToken)
			}
			if tt.idToken {
				c := verify(t, v, s, first.str("id_token"))
				if got := c.FHIRUser != nil; got != tt.fhirUser {
					t.Errorf("fhirUser claim sent: %v, want %v", got, tt.fhirUser)
				}
				if c.Nonce != nil {
					t.Errorf("nonce %q without one in the request", *c.Nonce)
				}
			}
			f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.str("refresh_token")}}
			if tt.refreshScope != "" {
				f.Set("scope", tt.refreshScope)
			}
			second := post(t, s, s.TokenURL, f)
			wantStatus(t, second, http.StatusOK)
			if got := second.str("id_token") != ""; got != tt.refreshIDToken {
				t.Errorf("refresh id_token sent: %v, want %v", got, tt.refreshIDToken)
			}
		})
	}

	s := smarttest.NewServer(smarttest.Options{Now: clk.Now, FHIRUser: "Practitioner/dr-1"})
	defer s.Close()
	c := verify(t, verifier(t, s, clk), s, s.Grant().IDToken)
	if c.Subject != "Practitioner/dr-1" || c.FHIRUser == nil || *c.FHIRUser != s.FHIRBaseURL+"/Practitioner/dr-1" {
		t.Errorf("Grant id_token sub %q fhirUser %v", c.Subject, c.FHIRUser)
	}
}

// TestIDTokenDiscovery: the smart-configuration and the OpenID Connect
// discovery document agree on the issuer and the jwks_uri, which serves
// the RS256 key named by the id_token's kid; another server's id_token is
// refused.
func TestIDTokenDiscovery(t *testing.T) {
	clk := newClock()
	s := smarttest.NewServer(smarttest.Options{Now: clk.Now})
	defer s.Close()
	other := smarttest.NewServer(smarttest.Options{Now: clk.Now})
	defer other.Close()

	get := func(u string, v any) {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", u, res.StatusCode)
		}
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
	var smart, oidcConf struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
		Caps    []string `json:"capabilities"`
	}
	get(s.FHIRBaseURL+"/.well-known/smart-configuration", &smart)
	get(s.URL+"/.well-known/openid-configuration", &oidcConf)
	if smart.Issuer != s.URL || oidcConf.Issuer != s.URL || smart.JWKSURI != s.JWKSURL || oidcConf.JWKSURI != s.JWKSURL {
		t.Errorf("smart-configuration %+v, openid-configuration %+v; want issuer %s jwks_uri %s", smart, oidcConf, s.URL, s.JWKSURL)
	}
	if len(oidcConf.Algs) != 1 || oidcConf.Algs[0] != "RS256" || !slices.Contains(smart.Caps, "sso-openid-connect") {
		t.Errorf("algs %v capabilities %v", oidcConf.Algs, smart.Caps)
	}

	var set jose.JSONWebKeySet
	get(s.JWKSURL, &set)
	raw := s.Grant().IDToken
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 || keys[0].Algorithm != "RS256" || keys[0].Use != "sig" || !keys[0].IsPublic() {
		t.Fatalf("kid %q not published as one public RS256 signing key: %+v", h.KeyID, set)
	}
	if _, err := jws.Verify(keys[0]); err != nil {
		t.Errorf("signature: %v", err)
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "JWT" {
		t.Errorf("typ %q", typ)
	}

	if _, err := verifier(t, other, clk).Verify(context.Background(), raw); err == nil {
		t.Error("another server's verifier accepts the id_token")
	}
}
