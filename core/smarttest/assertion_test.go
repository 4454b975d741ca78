package smarttest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// claims are the claims of a test client assertion.
type claims map[string]any

// sign returns a compact JWS of c with key, alg and headers.
func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, headers map[jose.HeaderKey]any, c claims) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range headers {
		opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwtRefresh presents refreshToken with client assertion a.
func jwtRefresh(t *testing.T, s *smarttest.Server, u, refreshToken, a string, extra url.Values) response {
	t.Helper()
	f := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_assertion_type": {core.ClientAssertionType}, "client_assertion": {a},
	}
	if u != s.TokenURL {
		f = url.Values{"token": {refreshToken}, "client_assertion_type": {core.ClientAssertionType}, "client_assertion": {a}}
	}
	for k, v := range extra {
		f[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(t, http.DefaultClient, req)
}

func TestPrivateKeyJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clk := newClock()

	for _, kt := range []struct {
		name string
		key  crypto.Signer
		alg  jose.SignatureAlgorithm
	}{{"RS384", rsaKey, jose.RS384}, {"ES384", ecKey, jose.ES384}} {
		s := smarttest.NewServer(smarttest.Options{AuthMethod: core.PrivateKeyJWT, ClientPublicKey: kt.key.Public(),
			ClientKeyID: "k1", Now: clk.Now})
		defer s.Close()
		now := clk.Now()
		good := func() claims {
			return claims{"iss": "smart-client", "sub": "smart-client", "aud": s.TokenURL,
				"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(), "jti": newJTI()}
		}
		hdr := map[jose.HeaderKey]any{"kid": "k1", "typ": "JWT"}
		with := func(k string, v any) claims {
			c := good()
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
			return c
		}
		tests := []struct {
			name      string
			assertion func(*testing.T) string
			extra     url.Values
			ok        bool
		}{
			{"valid", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, good()) }, nil, true},
			{"valid, client_id too, aud as array", func(t *testing.T) string {
				return sign(t, kt.key, kt.alg, hdr, with("aud", []string{"x", s.TokenURL}))
			}, url.Values{"client_id": {"smart-client"}}, true},
			{"client_id differs", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, good()) }, url.Values{"client_id": {"other"}}, false},
			{"client_secret too", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, good()) }, url.Values{"client_secret": {"x"}}, false},
			{"wrong assertion type", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, good()) },
				url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}}, false},
			{"other key", func(t *testing.T) string { return sign(t, otherEC, jose.ES384, hdr, good()) }, nil, false},
			{"HS384 with the public key as secret", func(t *testing.T) string {
				return sign(t, []byte("0123456789012345678901234567890123456789012345678"), jose.HS384, hdr, good())
			}, nil, false},
			{"alg none", func(t *testing.T) string { return unsigned(good()) }, nil, false},
			{"RS256 or ES256", func(t *testing.T) string {
				if kt.alg != jose.RS384 {
					return sign(t, p256, jose.ES256, hdr, good())
				}
				return sign(t, kt.key, jose.RS256, hdr, good())
			}, nil, false},
			{"wrong kid", func(t *testing.T) string {
				return sign(t, kt.key, kt.alg, map[jose.HeaderKey]any{"kid": "k2", "typ": "JWT"}, good())
			}, nil, false},
			{"no typ", func(t *testing.T) string { return sign(t, kt.key, kt.alg, map[jose.HeaderKey]any{"kid": "k1"}, good()) }, nil, false},
			{"iss is not sub", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, with("sub", "someone")) }, nil, false},
			{"wrong aud", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, with("aud", s.URL)) }, nil, false},
			{"no exp", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, with("exp", nil)) }, nil, false},
			{"expired", func(t *testing.T) string {
				return sign(t, kt.key, kt.alg, hdr, with("exp", now.Add(-time.Second).Unix()))
			}, nil, false},
			{"exp too far ahead", func(t *testing.T) string {
				return sign(t, kt.key, kt.alg, hdr, with("exp", now.Add(6*time.Minute).Unix()))
			}, nil, false},
			{"no jti", func(t *testing.T) string { return sign(t, kt.key, kt.alg, hdr, with("jti", nil)) }, nil, false},
		}
		for _, tt := range tests {
			t.Run(kt.name+"/"+tt.name, func(t *testing.T) {
				tok := s.Grant()
				r := jwtRefresh(t, s, s.TokenURL, tok.RefreshToken, tt.assertion(t), tt.extra)
				if tt.ok {
					wantStatus(t, r, http.StatusOK)
					return
				}
				wantError(t, r, http.StatusUnauthorized, "invalid_client")
			})
		}
		t.Run(kt.name+"/replayed jti", func(t *testing.T) {
			a := sign(t, kt.key, kt.alg, hdr, good())
			wantStatus(t, jwtRefresh(t, s, s.TokenURL, s.Grant().RefreshToken, a, nil), http.StatusOK)
			r := jwtRefresh(t, s, s.TokenURL, s.Grant().RefreshToken, a, nil)
			wantError(t, r, http.StatusUnauthorized, "invalid_client")
			if !strings.Contains(r.str("error_description"), "jti") {
				t.Errorf("error_description %q", r.str("error_description"))
			}
		})
		t.Run(kt.name+"/revocation", func(t *testing.T) {
			tok := s.Grant()
			wantStatus(t, jwtRefresh(t, s, s.RevokeURL, tok.RefreshToken, sign(t, kt.key, kt.alg, hdr, good()), nil), http.StatusOK)
			wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusUnauthorized)
		})
	}
	if s := smarttest.NewServer(smarttest.Options{AuthMethod: core.PrivateKeyJWT, ClientPublicKey: ecKey.Public()}); s.Options().ClientKeyID != "smart-client-key" {
		t.Errorf("default ClientKeyID %q", s.Options().ClientKeyID)
	}
}

func TestPrivateKeyJWTNeedsAPublicKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic without ClientPublicKey")
		}
	}()
	smarttest.New("http://localhost", smarttest.Options{AuthMethod: core.PrivateKeyJWT})
}

func TestPrivateKeyJWTConfiguration(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	s := smarttest.NewServer(smarttest.Options{AuthMethod: core.PrivateKeyJWT, ClientPublicKey: ecKey.Public()})
	defer s.Close()
	r := send(t, http.DefaultClient, mustRequest(t, http.MethodGet, s.URL+"/.well-known/smart-configuration"))
	methods, _ := json.Marshal(r.body["token_endpoint_auth_methods_supported"])
	caps, _ := json.Marshal(r.body["capabilities"])
	algs, _ := json.Marshal(r.body["token_endpoint_auth_signing_alg_values_supported"])
	if string(methods) != `["private_key_jwt"]` || !strings.Contains(string(caps), "client-confidential-asymmetric") ||
		string(algs) != `["RS384","ES384"]` {
		t.Errorf("configuration: %s %s %s", methods, caps, algs)
	}
}

func TestCancel(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	byRefresh, byAccess, kept := s.Grant(), s.Grant(), s.Grant()
	get := func(q string) response {
		return send(t, http.DefaultClient, mustRequest(t, http.MethodGet, s.CancelURL+q))
	}
	wantStatus(t, get("?token="+url.QueryEscape(byRefresh.RefreshToken)), http.StatusOK)
	wantStatus(t, get("?token="+url.QueryEscape(byAccess.AccessToken)), http.StatusOK)
	wantStatus(t, get("?token=unknown"), http.StatusOK)
	wantError(t, get(""), http.StatusBadRequest, "invalid_request")
	wantError(t, get("?token=a&token=b"), http.StatusBadRequest, "invalid_request")
	if s.RevokedGrants() != 2 || s.RevokeCalls() != 5 {
		t.Errorf("RevokedGrants %d (want 2), RevokeCalls %d (want 5)", s.RevokedGrants(), s.RevokeCalls())
	}
	for _, tok := range []*core.Token{byRefresh, byAccess} {
		wantError(t, refresh(t, s, tok.RefreshToken), http.StatusBadRequest, "invalid_grant")
	}
	wantStatus(t, fhirGet(t, s, kept.AccessToken, "/Patient/123"), http.StatusOK)
}

func TestRevokeHook(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	tok := s.Grant()
	s.SetRevokeHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	wantStatus(t, post(t, s, s.RevokeURL, url.Values{"token": {tok.RefreshToken}}), http.StatusServiceUnavailable)
	wantStatus(t, send(t, http.DefaultClient, mustRequest(t, http.MethodGet, s.CancelURL+"?token=x")), http.StatusServiceUnavailable)
	s.SetRevokeHook(nil)
	if s.RevokedGrants() != 0 || s.RevokeCalls() != 2 {
		t.Errorf("RevokedGrants %d RevokeCalls %d", s.RevokedGrants(), s.RevokeCalls())
	}
	wantStatus(t, refresh(t, s, tok.RefreshToken), http.StatusOK)
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// unsigned returns an alg=none JWT of c.
func unsigned(c claims) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": "k1"})
	p, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

func newJTI() string { return rand.Text() }
