package smarttest_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func TestExpireAccessTokens(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()

	tok := s.Grant()
	wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusOK)
	s.ExpireAccessTokens()
	r := fhirGet(t, s, tok.AccessToken, "/Patient/123")
	wantStatus(t, r, http.StatusUnauthorized)
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate %q", got)
	}

	// Refresh tokens still work, and the new access token is fresh.
	next := refresh(t, s, tok.RefreshToken)
	wantStatus(t, next, http.StatusOK)
	wantStatus(t, fhirGet(t, s, next.str("access_token"), "/Patient/123"), http.StatusOK)
	if s.FHIRCalls() != 3 {
		t.Errorf("FHIRCalls %d, want 3", s.FHIRCalls())
	}
}

func TestAccessTokenExpiresWithClock(t *testing.T) {
	clk := newClock()
	s := smarttest.NewServer(smarttest.Options{Now: clk.Now, AccessTokenTTL: 5 * time.Minute})
	defer s.Close()

	tok := s.Grant()
	if want := clk.Now().Add(5 * time.Minute); !tok.Expiry.Equal(want) {
		t.Errorf("Expiry %v, want %v", tok.Expiry, want)
	}
	clk.Advance(5*time.Minute - time.Second)
	wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusOK)
	clk.Advance(time.Second)
	wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusUnauthorized)

	r := refresh(t, s, tok.RefreshToken)
	wantStatus(t, r, http.StatusOK)
	if r.body["expires_in"] != 300.0 {
		t.Errorf("expires_in %v, want 300", r.body["expires_in"])
	}
	wantStatus(t, fhirGet(t, s, r.str("access_token"), "/Patient/123"), http.StatusOK)
}

func TestFHIR(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{Patient: "p1"})
	defer s.Close()
	tok := s.Grant()

	if r := fhirGet(t, s, "", "/metadata"); r.status != http.StatusOK || r.str("resourceType") != "CapabilityStatement" {
		t.Errorf("metadata: %d %v", r.status, r.body)
	}
	r := fhirGet(t, s, "", "/Patient/p1")
	wantStatus(t, r, http.StatusUnauthorized)
	if r.header.Get("WWW-Authenticate") == "" || r.str("resourceType") != "OperationOutcome" {
		t.Errorf("401 without token: %v %v", r.header, r.body)
	}
	wantStatus(t, fhirGet(t, s, "not-a-token", "/Patient/p1"), http.StatusUnauthorized)

	r = fhirGet(t, s, tok.AccessToken, "/Patient/nobody")
	wantStatus(t, r, http.StatusNotFound)
	if r.str("resourceType") != "OperationOutcome" {
		t.Errorf("404 body %v", r.body)
	}

	for _, query := range []string{"?_id=p1", "?name=shaw", "?name=Amy", ""} {
		r := fhirGet(t, s, tok.AccessToken, "/Patient"+query)
		wantStatus(t, r, http.StatusOK)
		if r.str("resourceType") != "Bundle" || r.str("type") != "searchset" || r.body["total"] != 1.0 {
			t.Errorf("search %q: %v", query, r.body)
		}
	}
	for _, query := range []string{"?_id=p2", "?name=smith"} {
		if r := fhirGet(t, s, tok.AccessToken, "/Patient"+query); r.body["total"] != 0.0 {
			t.Errorf("search %q: %v", query, r.body)
		}
	}

	body := []byte(`{"resourceType":"Observation","status":"final","code":{"text":"weight"}}`)
	req, _ := http.NewRequest(http.MethodPost, s.FHIRBaseURL+"/Observation", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/fhir+json")
	r = send(t, http.DefaultClient, req)
	wantStatus(t, r, http.StatusCreated)
	id := r.str("id")
	if id == "" || r.str("status") != "final" || r.header.Get("Location") == "" {
		t.Fatalf("create: %v %v", r.header, r.body)
	}
	if r := fhirGet(t, s, tok.AccessToken, "/Observation/"+id); r.status != http.StatusOK || r.str("status") != "final" {
		t.Errorf("read created: %d %v", r.status, r.body)
	}

	req, _ = http.NewRequest(http.MethodPost, s.FHIRBaseURL+"/Patient", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/fhir+json")
	wantStatus(t, send(t, http.DefaultClient, req), http.StatusBadRequest)
}

func TestFHIRHook(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	tok := s.Grant()

	s.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusBadGateway)
	s.SetFHIRHook(nil)
	wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusOK)
	if s.FHIRCalls() != 2 {
		t.Errorf("FHIRCalls %d, want 2", s.FHIRCalls())
	}
}

func TestSmartConfiguration(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()

	for _, u := range []string{s.URL + "/.well-known/smart-configuration", s.FHIRBaseURL + "/.well-known/smart-configuration"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		r := send(t, http.DefaultClient, req)
		wantStatus(t, r, http.StatusOK)
		for k, want := range map[string]string{
			"issuer":                 s.URL,
			"authorization_endpoint": s.AuthorizeURL,
			"token_endpoint":         s.TokenURL,
			"revocation_endpoint":    s.RevokeURL,
		} {
			if r.str(k) != want {
				t.Errorf("%s = %q, want %q", k, r.str(k), want)
			}
		}
		methods, _ := r.body["token_endpoint_auth_methods_supported"].([]any)
		if len(methods) != 1 || methods[0] != "client_secret_post" {
			t.Errorf("token_endpoint_auth_methods_supported %v", methods)
		}
		pkce, _ := r.body["code_challenge_methods_supported"].([]any)
		if len(pkce) != 1 || pkce[0] != "S256" {
			t.Errorf("code_challenge_methods_supported %v", pkce)
		}
	}
	if s.FHIRCalls() != 0 {
		t.Errorf("FHIRCalls %d, want 0", s.FHIRCalls())
	}
}

func TestNew(t *testing.T) {
	s := smarttest.New("http://localhost:9000", smarttest.Options{})
	defer s.Close()
	if s.TokenURL != "http://localhost:9000/token" || s.FHIRBaseURL != "http://localhost:9000/fhir" {
		t.Errorf("URLs %q %q", s.TokenURL, s.FHIRBaseURL)
	}
	if tok := s.Grant(); tok.Extra["smart_style_url"] != "http://localhost:9000/smart-style.json" {
		t.Errorf("smart_style_url %v", tok.Extra["smart_style_url"])
	}
}
