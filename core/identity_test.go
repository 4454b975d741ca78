package core_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/smartrefresh/smartrefresh/core"
)

// signJWT signs claims as a compact JWS with key under kid.
func signJWT(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// idTokenServer is a mock server whose SMART configuration names a JWKS
// holding the RSA test key (kid "idp-1"), and whose token answers carry the
// id_token that claims makes.
type idTokenServer struct {
	*launchApp
	mu     sync.Mutex
	claims func(nonce string) (crypto.Signer, map[string]any)
	nonce  string
}

func newIDTokenServer(t *testing.T) *idTokenServer {
	s := &idTokenServer{}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: rsaKey().Public(), KeyID: "idp-1", Algorithm: "RS256", Use: "sig"},
	}})
	s.launchApp = newLaunchApp(t, launchOptions{
		config: func(c map[string]any) { c["jwks_uri"] = c["issuer"].(string) + "/jwks" },
		wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/jwks" {
					w.Header().Set("Content-Type", "application/json")
					w.Write(jwks)
					return
				}
				next.ServeHTTP(w, r)
			})
		},
	})
	s.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var answer map[string]any
		if json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer["access_token"] == nil {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		s.mu.Lock()
		key, claims := s.claims(s.nonce)
		s.mu.Unlock()
		answer["id_token"] = signJWT(t, key, jose.RS256, "idp-1", claims)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer)
	})
	return s
}

// claimsFor returns valid claims for the launch's nonce.
func (s *idTokenServer) claimsFor(nonce string) map[string]any {
	now := s.clock.Now()
	return map[string]any{
		"iss": s.srv.URL, "sub": "user-7", "aud": "smart-client", "nonce": nonce,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "fhirUser": "Practitioner/7",
	}
}

// loginWith launches, has the server issue an id_token with the claims
// edit makes of valid ones, and returns the callback's answer.
func (s *idTokenServer) loginWith(b *browser, key crypto.Signer, edit func(map[string]any)) answer {
	s.t.Helper()
	authz := s.launch(b, "")
	s.mu.Lock()
	s.nonce = authz.Query().Get("nonce")
	s.claims = func(nonce string) (crypto.Signer, map[string]any) {
		c := s.claimsFor(nonce)
		if edit != nil {
			edit(c)
		}
		return key, c
	}
	s.mu.Unlock()
	return b.get(s.authorize(b, authz), "Accept", "application/json")
}

func TestIDTokenAccepted(t *testing.T) {
	s := newIDTokenServer(t)
	for _, tc := range []struct {
		name, fhirUser, want string
	}{
		{"relative fhirUser", "Practitioner/7", "/Practitioner/7"},
		{"absolute fhirUser under the FHIR base", "{base}/Patient/9", "{base}/Patient/9"},
		{"absolute fhirUser on the issuer's host", "{iss}/users/Practitioner/3", "{iss}/users/Practitioner/3"},
		{"azp is the client id", "Practitioner/7", "/Practitioner/7"},
		// Issue 19 item 12: kept only under the FHIR base or on the
		// issuer's host, and never with encoded dots.
		{"fhirUser on another host", "https://evil.example/fhir/Practitioner/1", ""},
		{"encoded dot segments", "Practitioner/%2e%2e/Patient/1", ""},
		{"encoded dot segments, upper case", "%2E%2E/Patient/1", ""},
		{"absolute with encoded dots", "{base}/%2e%2e/%2e%2e/admin/Practitioner/1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			expand := strings.NewReplacer("{base}", s.srv.FHIRBaseURL, "{iss}", s.srv.URL).Replace
			res := s.loginWith(b, rsaKey(), func(c map[string]any) {
				c["fhirUser"] = expand(tc.fhirUser)
				if strings.HasPrefix(tc.name, "azp") {
					c["azp"] = "smart-client"
				}
			})
			if res.status != http.StatusSeeOther {
				t.Fatalf("callback: %d %s", res.status, res.body)
			}
			want := expand(tc.want)
			if strings.HasPrefix(want, "/") {
				want = s.srv.FHIRBaseURL + want
			}
			if info := s.me(b); info.FHIRUser != want || info.FHIRBaseURL != s.srv.FHIRBaseURL {
				t.Errorf("Info.FHIRUser = %q (base %q), want %q", info.FHIRUser, info.FHIRBaseURL, want)
			}
		})
	}
}

func TestIDTokenRefused(t *testing.T) {
	s := newIDTokenServer(t)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		edit func(map[string]any)
	}{
		{"bad signature", mustRSA(t), nil},
		{"wrong audience", rsaKey(), func(c map[string]any) { c["aud"] = "another-client" }},
		{"expired", rsaKey(), func(c map[string]any) { c["exp"] = s.clock.Now().Add(-time.Minute).Unix() }},
		{"wrong issuer", rsaKey(), func(c map[string]any) { c["iss"] = "https://evil.example" }},
		{"wrong nonce", rsaKey(), func(c map[string]any) { c["nonce"] = "not-the-launch-nonce" }},
		// Issue 19 items 11 and 12: the launch sent a nonce, so the
		// id_token must carry it; an azp must be the client id.
		{"no nonce", rsaKey(), func(c map[string]any) { delete(c, "nonce") }},
		{"empty nonce", rsaKey(), func(c map[string]any) { c["nonce"] = "" }},
		{"azp of another client", rsaKey(), func(c map[string]any) { c["azp"] = "another-client" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			res := s.loginWith(b, tc.key, tc.edit)
			if res.status != http.StatusUnauthorized || !strings.Contains(res.body, `"invalid_id_token"`) {
				t.Errorf("callback: %d %s, want 401 invalid_id_token", res.status, res.body)
			}
			s.loggedOut(b)
		})
	}
	if strings.Contains(s.logs.String(), "eyJ") {
		t.Error("a JWT is in the logs")
	}
}

func TestResolveFHIRUser(t *testing.T) {
	aud, iss := "https://ehr.example/fhir", "https://auth.example/realms/x"
	for claim, want := range map[string]string{
		"Practitioner/1": aud + "/Practitioner/1",
		"https://ehr.example/fhir/Practitioner/1":         "https://ehr.example/fhir/Practitioner/1",
		"https://auth.example/people/Practitioner/1":      "https://auth.example/people/Practitioner/1",
		"HTTPS://EHR.Example/fhir/Practitioner/1":         "https://ehr.example/fhir/Practitioner/1",
		"https://other.example/fhir/RelatedPerson":        "!",
		"https://ehr.example/fhirx/Practitioner/1":        "!",
		"http://ehr.example/fhir/Practitioner/1":          "!",
		"https://ehr.example:8443/fhir/Practitioner/1":    "!",
		"https://ehr.example/fhir/%2e%2e/Practitioner/1":  "!",
		"https://ehr.example/fhir/x/../../Practitioner/1": "!",
		"https://ehr.example/fhir/Practitioner/1#x":       "!",
		"Practitioner/%2e%2e/Patient/1":                   "!",
		"Practitioner/%2E%2e":                             "!",
		"Practitioner/./1":                                "!",
		"Practitioner//1":                                 "!",
		"":                                                "",
		"/Practitioner/1":                                 "!",
		"//evil.example/x":                                "!",
		"../Practitioner/1":                               "!",
		"javascript:alert(1)":                             "!",
		"Practitioner/1?x=1":                              "!",
	} {
		got, ok := core.ResolveFHIRUser(aud, iss, claim)
		if want == "!" {
			if ok {
				t.Errorf("ResolveFHIRUser(%q) = %q, want refused", claim, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("ResolveFHIRUser(%q) = %q, %v, want %q", claim, got, ok, want)
		}
	}
}

// mustRSA returns a new RSA key, other than the test key.
func mustRSA(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestIDTokenFromSmarttest: the id_token core/smarttest signs (its JWKS,
// issuer and the launch's nonce) is validated for real, and its absolute
// fhirUser reaches SessionInfo.
func TestIDTokenFromSmarttest(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	if res := a.login(b, ""); res.status != http.StatusSeeOther {
		t.Fatalf("callback: %d %s", res.status, res.body)
	}
	if info := a.me(b); info.FHIRUser != a.srv.FHIRBaseURL+"/Patient/123" {
		t.Errorf("Info.FHIRUser = %q, want %s/Patient/123", info.FHIRUser, a.srv.FHIRBaseURL)
	}
	// Without openid in the scope there is no identity to validate.
	a2 := newLaunchApp(t, launchOptions{launch: func(c *core.LaunchConfig) { c.Scope = "launch/patient patient/*.read offline_access" }})
	b2 := newBrowser(t)
	if res := a2.login(b2, ""); res.status != http.StatusSeeOther {
		t.Fatalf("callback without openid: %d %s", res.status, res.body)
	}
	if info := a2.me(b2); info.FHIRUser != "" || info.FHIRBaseURL != a2.srv.FHIRBaseURL {
		t.Errorf("Info without openid: FHIRUser %q, FHIRBaseURL %q", info.FHIRUser, info.FHIRBaseURL)
	}
}

// FuzzResolveFHIRUser: an fhirUser claim kept is an http(s) URL under the
// FHIR base or on the issuer's origin, its scheme and host in lower case, without dot segments, empty
// segments, escapes, query or fragment (issue 19 item 12).
func FuzzResolveFHIRUser(f *testing.F) {
	for _, s := range []string{"Practitioner/1", "https://ehr.example/fhir/Patient/2", "https://auth.example/u/Practitioner/3",
		"Practitioner/%2e%2e/x", "https://evil.example/fhir/Patient/1", "../x", "//evil.example/x", "https://ehr.example/fhirx/P/1"} {
		f.Add(s)
	}
	const aud, iss = "https://ehr.example/fhir", "https://auth.example/realm"
	f.Fuzz(func(t *testing.T, claim string) {
		got, ok := core.ResolveFHIRUser(aud, iss, claim)
		if !ok || got == "" {
			return
		}
		u, err := url.Parse(got)
		if err != nil || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.Contains(got, "%") {
			t.Fatalf("%q kept as %q", claim, got)
		}
		underBase := u.Scheme == "https" && u.Host == "ehr.example" && strings.HasPrefix(u.Path, "/fhir/")
		onIssuer := u.Scheme == "https" && u.Host == "auth.example"
		if !underBase && !onIssuer {
			t.Fatalf("%q kept as %q, neither under the FHIR base nor on the issuer's origin", claim, got)
		}
		for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q kept as %q, with a %q segment", claim, got, seg)
			}
		}
	})
}
