package smarttest_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func TestAuthorizationCodeFlow(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, Encounter: "enc-1", Logf: t.Logf})
	defer s.Close()

	c, verifier := code(t, s)
	r := exchange(t, s, c, verifier)
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
	if got := r.header.Get("Pragma"); got != "no-cache" {
		t.Errorf("Pragma %q", got)
	}
	for k, want := range map[string]any{
		"token_type":          "Bearer",
		"expires_in":          3600.0,
		"scope":               smarttest.DefaultScope,
		"patient":             "123",
		"encounter":           "enc-1",
		"need_patient_banner": true,
		"smart_style_url":     s.URL + "/smart-style.json",
	} {
		if r.body[k] != want {
			t.Errorf("%s = %v, want %v", k, r.body[k], want)
		}
	}
	if len(r.str("access_token")) != 43 || len(r.str("refresh_token")) != 43 {
		t.Errorf("tokens are not 32 random bytes in base64url: %v", r.body)
	}
	ctx, _ := r.body["fhirContext"].([]any)
	if len(ctx) != 1 || ctx[0].(map[string]any)["reference"] != "Patient/123" {
		t.Errorf("fhirContext = %v", r.body["fhirContext"])
	}

	p := fhirGet(t, s, r.str("access_token"), "/Patient/123")
	wantStatus(t, p, http.StatusOK)
	if p.header.Get("Content-Type") != "application/fhir+json" {
		t.Errorf("Content-Type %q", p.header.Get("Content-Type"))
	}
	name := p.body["name"].([]any)[0].(map[string]any)
	if name["family"] != "Shaw" || name["given"].([]any)[0] != "Amy" {
		t.Errorf("patient name %v", name)
	}
	wantStatus(t, fhirGet(t, s, r.str("access_token"), "/Encounter/enc-1"), http.StatusOK)

	if got := refresh(t, s, r.str("refresh_token")); got.status != http.StatusOK {
		t.Errorf("refresh after exchange: %d %v", got.status, got.body)
	}
	if s.TokenCalls() != 2 || s.RefreshCalls() != 1 {
		t.Errorf("TokenCalls %d RefreshCalls %d, want 2 1", s.TokenCalls(), s.RefreshCalls())
	}
}

func TestAuthorizeErrors(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered})
	defer s.Close()
	_, challenge := pkce()

	tests := []struct {
		name   string
		change func(q url.Values)
		status int    // 400 without redirect, or 302
		error  string // the error sent back with a 302
	}{
		{"valid", func(q url.Values) {}, http.StatusFound, ""},
		{"no aud", func(q url.Values) { q.Del("aud") }, http.StatusFound, "invalid_request"}, // SMART requires it (issue 19 item 15)
		{"empty aud", func(q url.Values) { q.Set("aud", "") }, http.StatusFound, "invalid_request"},
		{"no scope", func(q url.Values) { q.Del("scope") }, http.StatusFound, ""},
		{"no client_id", func(q url.Values) { q.Del("client_id") }, http.StatusBadRequest, ""},
		{"unknown client_id", func(q url.Values) { q.Set("client_id", "other") }, http.StatusBadRequest, ""},
		{"no redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, http.StatusBadRequest, ""},
		{"relative redirect_uri", func(q url.Values) { q.Set("redirect_uri", "/callback") }, http.StatusBadRequest, ""},
		{"redirect_uri with fragment", func(q url.Values) { q.Set("redirect_uri", redirectURI+"#x") }, http.StatusBadRequest, ""},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, http.StatusFound, "unsupported_response_type"},
		{"no state", func(q url.Values) { q.Del("state") }, http.StatusFound, "invalid_request"},
		{"no code_challenge", func(q url.Values) { q.Del("code_challenge") }, http.StatusFound, "invalid_request"},
		{"short code_challenge", func(q url.Values) { q.Set("code_challenge", "abc") }, http.StatusFound, "invalid_request"},
		{"no code_challenge_method", func(q url.Values) { q.Del("code_challenge_method") }, http.StatusFound, "invalid_request"},
		{"plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, http.StatusFound, "invalid_request"},
		{"wrong aud", func(q url.Values) { q.Set("aud", "https://other.example/fhir") }, http.StatusFound, "invalid_request"},
		{"repeated scope", func(q url.Values) { q.Add("scope", "openid") }, http.StatusFound, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := authorizeQuery(s, challenge)
			tt.change(q)
			status, back := authorize(t, s, q)
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			if status != http.StatusFound {
				return
			}
			if got := back.Get("error"); got != tt.error {
				t.Errorf("error %q (%s), want %q", got, back.Get("error_description"), tt.error)
			}
			if tt.error == "" && back.Get("code") == "" {
				t.Errorf("no code in %v", back)
			}
			if back.Get("state") != q.Get("state") {
				t.Errorf("state %q, want %q", back.Get("state"), q.Get("state"))
			}
		})
	}
}

func TestCodeExchangeErrors(t *testing.T) {
	clk := newClock()
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, Now: clk.Now})
	defer s.Close()

	tests := []struct {
		name   string
		change func(f url.Values)
		error  string
	}{
		{"wrong verifier", func(f url.Values) { v, _ := pkce(); f.Set("code_verifier", v) }, "invalid_grant"},
		{"no verifier", func(f url.Values) { f.Del("code_verifier") }, "invalid_grant"}, // RFC 7636 section 4.6
		{"wrong redirect_uri", func(f url.Values) { f.Set("redirect_uri", redirectURI+"/other") }, "invalid_grant"},
		{"no redirect_uri", func(f url.Values) { f.Del("redirect_uri") }, "invalid_grant"},
		{"unknown code", func(f url.Values) { f.Set("code", "nope") }, "invalid_grant"},
		{"no code", func(f url.Values) { f.Del("code") }, "invalid_request"},
		{"expired code", func(f url.Values) { clk.Advance(61 * time.Second) }, "invalid_grant"},
		{"unknown grant_type", func(f url.Values) { f.Set("grant_type", "password") }, "unsupported_grant_type"},
		{"no grant_type", func(f url.Values) { f.Del("grant_type") }, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, verifier := code(t, s)
			f := url.Values{
				"grant_type":    {"authorization_code"},
				"code":          {c},
				"redirect_uri":  {redirectURI},
				"code_verifier": {verifier},
			}
			tt.change(f)
			wantError(t, post(t, s, s.TokenURL, f), http.StatusBadRequest, tt.error)
		})
	}
}

func TestCodeReuseRevokesTokens(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, Logf: t.Logf})
	defer s.Close()

	c, verifier := code(t, s)
	first := exchange(t, s, c, verifier)
	wantStatus(t, first, http.StatusOK)
	wantStatus(t, fhirGet(t, s, first.str("access_token"), "/Patient/123"), http.StatusOK)

	wantError(t, exchange(t, s, c, verifier), http.StatusBadRequest, "invalid_grant")
	if s.RevokedGrants() != 1 {
		t.Errorf("RevokedGrants %d, want 1", s.RevokedGrants())
	}
	wantStatus(t, fhirGet(t, s, first.str("access_token"), "/Patient/123"), http.StatusUnauthorized)
	wantError(t, refresh(t, s, first.str("refresh_token")), http.StatusBadRequest, "invalid_grant")
}

// TestRedirectURIMustBeRegistered: only a registered redirect_uri, compared
// as an exact string, gets a code; any other is refused with a 400 page and
// no redirect, even when the request has other errors (RFC 6749 section
// 4.1.2.1, RFC 9700 section 4.1.3).
func TestRedirectURIMustBeRegistered(t *testing.T) {
	const second = "https://app.example/cb?tenant=a"
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: []string{redirectURI, second}, Logf: t.Logf})
	defer s.Close()
	none := smarttest.NewServer(smarttest.Options{})
	defer none.Close()
	_, challenge := pkce()

	tests := []struct {
		name        string
		srv         *smarttest.Server
		redirectURI string
		change      func(q url.Values)
		status      int
	}{
		{"registered", s, redirectURI, nil, http.StatusFound},
		{"second registered, with its query", s, second, nil, http.StatusFound},
		{"another host", s, "https://evil.example/cb", nil, http.StatusBadRequest},
		{"another path", s, "http://app.example/callback/x", nil, http.StatusBadRequest},
		{"trailing slash", s, "http://app.example/callback/", nil, http.StatusBadRequest},
		{"upper-case host", s, "http://APP.example/callback", nil, http.StatusBadRequest},
		{"extra query", s, redirectURI + "?next=https://evil.example", nil, http.StatusBadRequest},
		{"missing query", s, "https://app.example/cb", nil, http.StatusBadRequest},
		{"https instead of http", s, "https://app.example/callback", nil, http.StatusBadRequest},
		{"explicit port", s, "http://app.example:80/callback", nil, http.StatusBadRequest},
		{"unregistered, with an error to report", s, "https://evil.example/cb",
			func(q url.Values) { q.Set("response_type", "token") }, http.StatusBadRequest},
		{"nothing registered", none, redirectURI, nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := authorizeQuery(tt.srv, challenge)
			q.Set("redirect_uri", tt.redirectURI)
			if tt.change != nil {
				tt.change(q)
			}
			res, err := noRedirect.Get(tt.srv.AuthorizeURL + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			loc := res.Header.Get("Location")
			if tt.status != http.StatusFound {
				if loc != "" {
					t.Errorf("redirected to %s", loc)
				}
				return
			}
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			back := u.Query()
			code := back.Get("code")
			back.Del("code")
			back.Del("state")
			u.RawQuery = back.Encode()
			if code == "" || u.String() != tt.redirectURI {
				t.Errorf("redirected to %s, want %s with a code", loc, tt.redirectURI)
			}
		})
	}
}

func TestRedirectURIsValidated(t *testing.T) {
	for _, bad := range []string{"/callback", "app.example/callback", "http://app.example/cb#frag", "ftp://app.example/cb"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New accepted redirect URI %q", bad)
				}
			}()
			smarttest.New("http://localhost", smarttest.Options{RedirectURIs: []string{bad}})
		}()
	}
}
