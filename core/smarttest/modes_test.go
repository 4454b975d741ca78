package smarttest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestNoClientCredentials: a token or revocation request without any client
// credentials is a malformed request, 400 invalid_request, as real servers
// answer; wrong credentials stay 401 invalid_client.
func TestNoClientCredentials(t *testing.T) {
	for _, method := range []core.AuthMethod{core.ClientSecretPost, core.ClientSecretBasic, core.None} {
		s := smarttest.NewServer(smarttest.Options{AuthMethod: method})
		defer s.Close()
		tok := s.Grant()
		bare := func(u string, f url.Values) response {
			req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(f.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return send(t, http.DefaultClient, req)
		}
		t.Run(string(method), func(t *testing.T) {
			wantError(t, bare(s.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}),
				http.StatusBadRequest, "invalid_request")
			wantError(t, bare(s.RevokeURL, url.Values{"token": {tok.RefreshToken}}),
				http.StatusBadRequest, "invalid_request")
			// Nothing was consumed or revoked.
			wantStatus(t, refresh(t, s, tok.RefreshToken), http.StatusOK)
			// Wrong credentials are still invalid_client.
			wantError(t, send(t, http.DefaultClient, formRequest(t, s.TokenURL,
				url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, authStyle(method), "other", "")),
				http.StatusUnauthorized, "invalid_client")
		})
	}
}

// TestPKCEFailure: a wrong or missing code_verifier is invalid_grant (RFC
// 7636 section 4.6); with PKCEFailureBurnsCode, the default, the code is
// then dead even with the right verifier, with PKCEFailureKeepsCode it
// still works.
func TestPKCEFailure(t *testing.T) {
	for _, mode := range []smarttest.PKCEFailure{smarttest.PKCEFailureBurnsCode, smarttest.PKCEFailureKeepsCode} {
		for _, attempt := range []string{"wrong verifier", "no verifier"} {
			t.Run(mode.String()+"/"+attempt, func(t *testing.T) {
				s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, PKCEFailure: mode, Logf: t.Logf})
				defer s.Close()
				c, verifier := code(t, s)
				f := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}}
				if attempt == "wrong verifier" {
					wrong, _ := pkce()
					f.Set("code_verifier", wrong)
				}
				wantError(t, post(t, s, s.TokenURL, f), http.StatusBadRequest, "invalid_grant")

				r := exchange(t, s, c, verifier)
				if mode == smarttest.PKCEFailureBurnsCode {
					wantError(t, r, http.StatusBadRequest, "invalid_grant")
					return
				}
				wantStatus(t, r, http.StatusOK)
				wantStatus(t, fhirGet(t, s, r.str("access_token"), "/Patient/123"), http.StatusOK)
			})
		}
	}
}

// TestTokenType: token_type is spelled as configured in every answer, and
// the FHIR server takes the scheme in any case.
func TestTokenType(t *testing.T) {
	for _, typ := range []string{"", "Bearer", "bearer", "BEARER"} {
		t.Run("TokenType="+typ, func(t *testing.T) {
			s := smarttest.NewServer(smarttest.Options{RedirectURIs: registered, TokenType: typ})
			defer s.Close()
			want := typ
			if want == "" {
				want = "Bearer"
			}
			if g := s.Grant(); g.TokenType != want {
				t.Errorf("Grant: token_type %q, want %q", g.TokenType, want)
			}
			c, verifier := code(t, s)
			first := exchange(t, s, c, verifier)
			second := refresh(t, s, first.str("refresh_token"))
			for name, r := range map[string]response{"exchange": first, "refresh": second} {
				wantStatus(t, r, http.StatusOK)
				if r.str("token_type") != want {
					t.Errorf("%s: token_type %q, want %q", name, r.str("token_type"), want)
				}
			}
			for _, scheme := range []string{want, "Bearer", "bearer"} {
				req, _ := http.NewRequest(http.MethodGet, s.FHIRBaseURL+"/Patient/123", nil)
				req.Header.Set("Authorization", scheme+" "+second.str("access_token"))
				wantStatus(t, send(t, http.DefaultClient, req), http.StatusOK)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted TokenType MAC")
		}
	}()
	smarttest.New("http://localhost", smarttest.Options{TokenType: "MAC"})
}

// TestRevokeRotated: revoking a live token revokes its grant in both modes;
// revoking a rotated refresh token, or an access token a refresh revoked,
// does nothing with RevokeRotatedNothing (the default, RFC 7009 section
// 2.2) and revokes the grant with RevokeRotatedGrant. Both endpoints
// agree.
func TestRevokeRotated(t *testing.T) {
	type revokeFunc func(t *testing.T, s *smarttest.Server, token string)
	endpoints := map[string]revokeFunc{
		"RFC 7009": func(t *testing.T, s *smarttest.Server, token string) {
			wantStatus(t, post(t, s, s.RevokeURL, url.Values{"token": {token}}), http.StatusOK)
		},
		"GET cancel": func(t *testing.T, s *smarttest.Server, token string) {
			res, err := http.Get(s.CancelURL + "?" + url.Values{"token": {token}}.Encode())
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("cancel: %d", res.StatusCode)
			}
		},
	}
	tests := []struct {
		name  string
		which func(old *core.Token, cur response) string // the token to revoke
		live  bool                                       // it still worked
	}{
		{"current refresh token", func(_ *core.Token, cur response) string { return cur.str("refresh_token") }, true},
		{"current access token", func(_ *core.Token, cur response) string { return cur.str("access_token") }, true},
		{"rotated refresh token", func(old *core.Token, _ response) string { return old.RefreshToken }, false},
		{"access token revoked by the refresh", func(old *core.Token, _ response) string { return old.AccessToken }, false},
	}
	for _, mode := range []smarttest.RotatedRevocation{smarttest.RevokeRotatedNothing, smarttest.RevokeRotatedGrant} {
		for epName, revoke := range endpoints {
			for _, tt := range tests {
				t.Run(mode.String()+"/"+epName+"/"+tt.name, func(t *testing.T) {
					s := smarttest.NewServer(smarttest.Options{RevokeRotated: mode, Logf: t.Logf})
					defer s.Close()
					old := s.Grant()
					cur := refresh(t, s, old.RefreshToken)
					wantStatus(t, cur, http.StatusOK)

					revoke(t, s, tt.which(old, cur))

					grantRevoked := tt.live || mode == smarttest.RevokeRotatedGrant
					if got := s.RevokedGrants() == 1; got != grantRevoked {
						t.Errorf("grant revoked: %v, want %v", got, grantRevoked)
					}
					status := http.StatusOK
					if grantRevoked {
						status = http.StatusUnauthorized
					}
					wantStatus(t, fhirGet(t, s, cur.str("access_token"), "/Patient/123"), status)
					r := refresh(t, s, cur.str("refresh_token"))
					if grantRevoked {
						wantError(t, r, http.StatusBadRequest, "invalid_grant")
					} else {
						wantStatus(t, r, http.StatusOK)
					}
				})
			}
		}
	}
}
