package smarttest_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func TestClientAuthentication(t *testing.T) {
	styles := []authStyle{
		authStyle(core.ClientSecretPost),
		authStyle(core.ClientSecretBasic),
		authStyle(core.None),
		basicAndSecretInBody,
		postAndHeader,
	}
	for _, method := range []core.AuthMethod{core.ClientSecretPost, core.ClientSecretBasic, core.None} {
		// An id and secret that need form-encoding in a Basic header.
		opts := smarttest.Options{AuthMethod: method, ClientID: "my client:1", ClientSecret: "s3cr%t/+="}
		s := smarttest.NewServer(opts)
		defer s.Close()
		o := s.Options()

		for _, style := range styles {
			t.Run(string(method)+"/"+string(style), func(t *testing.T) {
				tok := s.Grant()
				f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
				r := send(t, http.DefaultClient, formRequest(t, s.TokenURL, f, style, o.ClientID, o.ClientSecret))
				if style == authStyle(method) {
					wantStatus(t, r, http.StatusOK)
					return
				}
				wantError(t, r, http.StatusUnauthorized, "invalid_client")
				if method == core.ClientSecretBasic && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("WWW-Authenticate %q, want Basic", r.header.Get("WWW-Authenticate"))
				}
			})
		}

		t.Run(string(method)+"/wrong credentials", func(t *testing.T) {
			tok := s.Grant()
			f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
			secret := "wrong"
			if method == core.None {
				secret = ""
			}
			r := send(t, http.DefaultClient, formRequest(t, s.TokenURL, f, authStyle(method), "wrong", secret))
			wantError(t, r, http.StatusUnauthorized, "invalid_client")
			r = send(t, http.DefaultClient, formRequest(t, s.TokenURL, f, authStyle(method), o.ClientID, secret))
			if method != core.None {
				wantError(t, r, http.StatusUnauthorized, "invalid_client")
			}
		})
	}
}

func TestTokenRequestFormat(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	form := func() url.Values {
		return url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {s.Grant().RefreshToken},
			"client_id": {"smart-client"}, "client_secret": {"smart-secret"},
		}
	}

	tests := []struct {
		name        string
		url         string
		contentType string
		body        string
	}{
		{"JSON body", s.TokenURL, "application/json", `{"grant_type":"refresh_token"}`},
		{"no Content-Type", s.TokenURL, "", form().Encode()},
		{"parameters in URL", s.TokenURL + "?" + form().Encode(), "application/x-www-form-urlencoded", ""},
		{"repeated parameter", s.TokenURL, "application/x-www-form-urlencoded", form().Encode() + "&grant_type=refresh_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tt.url, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			wantError(t, send(t, http.DefaultClient, req), http.StatusBadRequest, "invalid_request")
		})
	}

	req, _ := http.NewRequest(http.MethodPost, s.TokenURL, strings.NewReader(form().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	wantStatus(t, send(t, http.DefaultClient, req), http.StatusOK)

	res, err := http.Get(s.TokenURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token: %d", res.StatusCode)
	}
}

// TestRotation: a refresh rotates the refresh token; the access token it
// replaces gets 401 at once (AccessRevokedOnRefresh, the default) or stays
// valid until its expiry (AccessKeptOnRefresh).
func TestRotation(t *testing.T) {
	for _, mode := range []smarttest.AccessOnRefresh{smarttest.AccessRevokedOnRefresh, smarttest.AccessKeptOnRefresh} {
		t.Run(mode.String(), func(t *testing.T) { testRotation(t, mode) })
	}
}

func testRotation(t *testing.T, mode smarttest.AccessOnRefresh) {
	s := smarttest.NewServer(smarttest.Options{Logf: t.Logf, AccessOnRefresh: mode})
	defer s.Close()

	tok := s.Grant()
	r1 := refresh(t, s, tok.RefreshToken)
	wantStatus(t, r1, http.StatusOK)
	if r1.str("refresh_token") == "" || r1.str("refresh_token") == tok.RefreshToken {
		t.Fatalf("refresh answer did not rotate: %v", r1.body)
	}
	if r1.str("access_token") == tok.AccessToken {
		t.Fatal("same access token")
	}
	if r1.str("patient") != "123" || r1.body["need_patient_banner"] != true {
		t.Errorf("refresh answer lacks the launch context: %v", r1.body)
	}
	old := http.StatusUnauthorized
	if mode == smarttest.AccessKeptOnRefresh {
		old = http.StatusOK // valid until its own expiry
	}
	wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), old)
	wantStatus(t, fhirGet(t, s, r1.str("access_token"), "/Patient/123"), http.StatusOK)

	r2 := refresh(t, s, r1.str("refresh_token"))
	wantStatus(t, r2, http.StatusOK)
	wantStatus(t, fhirGet(t, s, r1.str("access_token"), "/Patient/123"), old)
	wantStatus(t, fhirGet(t, s, r2.str("access_token"), "/Patient/123"), http.StatusOK)
	if s.RefreshCalls() != 2 || s.Reuses() != 0 || s.RevokedGrants() != 0 {
		t.Errorf("RefreshCalls %d Reuses %d RevokedGrants %d, want 2 0 0", s.RefreshCalls(), s.Reuses(), s.RevokedGrants())
	}
}

func TestReuseRevokesGrant(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{Logf: t.Logf})
	defer s.Close()

	other := s.Grant()
	tok := s.Grant()
	r1 := refresh(t, s, tok.RefreshToken)
	wantStatus(t, r1, http.StatusOK)

	wantError(t, refresh(t, s, tok.RefreshToken), http.StatusBadRequest, "invalid_grant")
	if s.Reuses() != 1 || s.RevokedGrants() != 1 {
		t.Errorf("Reuses %d RevokedGrants %d, want 1 1", s.Reuses(), s.RevokedGrants())
	}
	// The current refresh token and every access token of the grant are dead.
	wantError(t, refresh(t, s, r1.str("refresh_token")), http.StatusBadRequest, "invalid_grant")
	for _, a := range []string{tok.AccessToken, r1.str("access_token")} {
		r := fhirGet(t, s, a, "/Patient/123")
		wantStatus(t, r, http.StatusUnauthorized)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
		if r.str("resourceType") != "OperationOutcome" {
			t.Errorf("401 body %v", r.body)
		}
	}
	// Other grants are untouched.
	wantStatus(t, fhirGet(t, s, other.AccessToken, "/Patient/123"), http.StatusOK)
	wantStatus(t, refresh(t, s, other.RefreshToken), http.StatusOK)
	if s.Reuses() != 1 {
		t.Errorf("Reuses %d, want 1", s.Reuses())
	}
}

func TestNoRotation(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{NoRotation: true})
	defer s.Close()

	tok := s.Grant()
	for range 3 {
		r := refresh(t, s, tok.RefreshToken)
		wantStatus(t, r, http.StatusOK)
		if _, ok := r.body["refresh_token"]; ok {
			t.Fatalf("refresh_token in answer: %v", r.body)
		}
	}
	if s.Reuses() != 0 || s.RevokedGrants() != 0 {
		t.Errorf("Reuses %d RevokedGrants %d", s.Reuses(), s.RevokedGrants())
	}
}

func TestNoRefreshToken(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, NoRefreshToken: true})
	defer s.Close()

	if tok := s.Grant(); tok.RefreshToken != "" || tok.AccessToken == "" {
		t.Errorf("Grant: %v", tok)
	}
	c, verifier := code(t, s)
	r := exchange(t, s, c, verifier)
	wantStatus(t, r, http.StatusOK)
	if _, ok := r.body["refresh_token"]; ok {
		t.Errorf("refresh_token in answer: %v", r.body)
	}
}

func TestRefreshTokenNeedsOfflineScope(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{Scope: "launch/patient patient/*.read"})
	defer s.Close()
	if tok := s.Grant(); tok.RefreshToken != "" {
		t.Errorf("refresh token issued without offline_access")
	}
}

func TestOmitContextOnRefresh(t *testing.T) {
	for _, omit := range []bool{false, true} {
		s := smarttest.NewServer(smarttest.Options{OmitContextOnRefresh: omit, Encounter: "e1"})
		defer s.Close()

		r := refresh(t, s, s.Grant().RefreshToken)
		wantStatus(t, r, http.StatusOK)
		for _, k := range []string{"patient", "encounter", "need_patient_banner", "smart_style_url", "fhirContext"} {
			if _, ok := r.body[k]; ok == omit {
				t.Errorf("OmitContextOnRefresh %v: %s present = %v", omit, k, ok)
			}
		}
		if r.str("access_token") == "" || r.str("refresh_token") == "" || r.str("scope") == "" {
			t.Errorf("answer lacks tokens: %v", r.body)
		}
	}
}

func TestRefreshScope(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()

	rt := s.Grant().RefreshToken
	tests := []struct {
		scope string
		error string
	}{
		{"patient/*.read", ""},
		{"patient/*.read offline_access", ""},
		{smarttest.DefaultScope, ""}, // back up to the original grant
		{"patient/*.read patient/*.write", "invalid_scope"},
		{"user/*.*", "invalid_scope"},
	}
	for _, tt := range tests {
		r := post(t, s, s.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {tt.scope}})
		if tt.error != "" {
			wantError(t, r, http.StatusBadRequest, tt.error)
			continue
		}
		wantStatus(t, r, http.StatusOK)
		if r.str("scope") != tt.scope {
			t.Errorf("scope %q, want %q", r.str("scope"), tt.scope)
		}
		rt = r.str("refresh_token")
	}
	if s.Reuses() != 0 {
		t.Errorf("Reuses %d", s.Reuses())
	}
}

func TestRefreshTokenTTL(t *testing.T) {
	clk := newClock()
	s := smarttest.NewServer(smarttest.Options{Now: clk.Now, RefreshTokenTTL: 24 * time.Hour})
	defer s.Close()

	tok := s.Grant()
	clk.Advance(23 * time.Hour)
	r := refresh(t, s, tok.RefreshToken)
	wantStatus(t, r, http.StatusOK)
	clk.Advance(24 * time.Hour)
	wantError(t, refresh(t, s, r.str("refresh_token")), http.StatusBadRequest, "invalid_grant")
}

func TestTokenHook(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{Logf: t.Logf})
	defer s.Close()
	tok := s.Grant()

	s.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	r := refresh(t, s, tok.RefreshToken)
	wantStatus(t, r, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if s.TokenCalls() != 1 || s.RefreshCalls() != 1 {
		t.Errorf("TokenCalls %d RefreshCalls %d, want 1 1", s.TokenCalls(), s.RefreshCalls())
	}

	// The 503 did not consume the refresh token.
	s.SetTokenHook(nil)
	r = refresh(t, s, tok.RefreshToken)
	wantStatus(t, r, http.StatusOK)

	// A lost answer: the server rotates, the client never hears of it, and
	// retrying with the same refresh token is a reuse.
	s.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(httptest.NewRecorder(), r)
		http.Error(w, "bad gateway", http.StatusBadGateway)
	})
	rt := r.str("refresh_token")
	wantStatus(t, refresh(t, s, rt), http.StatusBadGateway)
	s.SetTokenHook(nil)
	wantError(t, refresh(t, s, rt), http.StatusBadRequest, "invalid_grant")
	if s.Reuses() != 1 || s.RevokedGrants() != 1 {
		t.Errorf("Reuses %d RevokedGrants %d, want 1 1", s.Reuses(), s.RevokedGrants())
	}
}

func TestConcurrentReuse(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	tok := s.Grant()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	defer client.CloseIdleConnections()

	const n = 200
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		ok, bad int
	)
	for range n {
		wg.Go(func() {
			f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
			req := formRequest(t, s.TokenURL, f, authStyle(core.ClientSecretPost), "smart-client", "smart-secret")
			<-start
			res, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch res.StatusCode {
			case http.StatusOK:
				ok++
			case http.StatusBadRequest:
				bad++
			}
		})
	}
	close(start)
	wg.Wait()

	if ok != 1 || bad != n-1 {
		t.Errorf("%d succeeded and %d failed, want 1 and %d", ok, bad, n-1)
	}
	if s.Reuses() < 1 || s.RevokedGrants() != 1 || s.RefreshCalls() != n {
		t.Errorf("Reuses %d RevokedGrants %d RefreshCalls %d", s.Reuses(), s.RevokedGrants(), s.RefreshCalls())
	}
	wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusUnauthorized)
}

func TestRevoke(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{AuthMethod: core.ClientSecretBasic})
	defer s.Close()

	byRefresh, byAccess, kept := s.Grant(), s.Grant(), s.Grant()
	wantStatus(t, post(t, s, s.RevokeURL, url.Values{"token": {byRefresh.RefreshToken}}), http.StatusOK)
	wantStatus(t, post(t, s, s.RevokeURL, url.Values{"token": {byAccess.AccessToken}, "token_type_hint": {"access_token"}}), http.StatusOK)
	wantStatus(t, post(t, s, s.RevokeURL, url.Values{"token": {"unknown"}}), http.StatusOK)
	wantError(t, post(t, s, s.RevokeURL, url.Values{}), http.StatusBadRequest, "invalid_request")
	r := send(t, http.DefaultClient, formRequest(t, s.RevokeURL, url.Values{"token": {kept.AccessToken}},
		authStyle(core.ClientSecretPost), "smart-client", "smart-secret"))
	wantError(t, r, http.StatusUnauthorized, "invalid_client")

	if s.RevokedGrants() != 2 {
		t.Errorf("RevokedGrants %d, want 2", s.RevokedGrants())
	}
	for _, tok := range []*core.Token{byRefresh, byAccess} {
		wantStatus(t, fhirGet(t, s, tok.AccessToken, "/Patient/123"), http.StatusUnauthorized)
		wantError(t, refresh(t, s, tok.RefreshToken), http.StatusBadRequest, "invalid_grant")
	}
	wantStatus(t, fhirGet(t, s, kept.AccessToken, "/Patient/123"), http.StatusOK)
	if s.Reuses() != 0 {
		t.Errorf("Reuses %d", s.Reuses())
	}
}

// TestJSONCharset: every JSON answer, success or OAuth error, is labelled
// application/json; charset=utf-8, as real servers label them.
func TestJSONCharset(t *testing.T) {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	g := s.Grant()
	answers := map[string]response{
		"refresh":          refresh(t, s, g.RefreshToken),
		"invalid_grant":    refresh(t, s, "unknown"),
		"invalid_client":   send(t, http.DefaultClient, formRequest(t, s.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, authStyle(core.ClientSecretPost), "smart-client", "wrong")),
		"revoke bad input": post(t, s, s.RevokeURL, url.Values{}),
	}
	for name, r := range answers {
		if got := r.header.Get("Content-Type"); got != "application/json; charset=utf-8" {
			t.Errorf("%s (%d): Content-Type %q", name, r.status, got)
		}
	}
	res, err := http.Get(s.URL + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("smart-configuration: Content-Type %q", got)
	}
}
