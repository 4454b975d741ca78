package core_test

import (
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

// TestClientCanonicalBearer: whatever spelling of token_type the server
// (in its refresh answers), x/oauth2 (TokenFromOAuth2) or the app (Save)
// used, Client sends "Authorization: Bearer …", which a resource server
// that checks the scheme case-sensitively accepts, before and after a
// refresh. The token keeps the raw spelling in TokenType.
func TestClientCanonicalBearer(t *testing.T) {
	for _, spelling := range []string{"bearer", "BEARER", "Bearer"} {
		for _, source := range []string{"Save", "TokenFromOAuth2"} {
			t.Run(spelling+"/"+source, func(t *testing.T) {
				f := newFixture(t, smarttest.Options{})
				grant := adaptertest.SpellTokenType(f.srv, spelling)
				tok := grant()
				if source == "TokenFromOAuth2" {
					o := (&oauth2.Token{AccessToken: tok.AccessToken, TokenType: spelling,
						RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}).WithExtra(map[string]any{"patient": tok.Patient})
					tok = core.TokenFromOAuth2(o)
				}
				ctx := f.request("")
				if err := f.r.Save(ctx, tok); err != nil {
					t.Fatal(err)
				}
				session := f.sm.Token(ctx)
				get := func(when string) {
					t.Helper()
					ctx := f.request(session)
					defer f.end(ctx)
					resp, err := f.r.Client(ctx).Get(f.srv.FHIRBaseURL + "/Patient/" + tok.Patient)
					if err != nil {
						t.Fatalf("%s: %v", when, err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("%s: %d, want 200", when, resp.StatusCode)
					}
				}
				get("before a refresh")
				f.clock.Advance(time.Hour + time.Second)
				get("after a refresh at expiry")
				f.srv.ExpireAccessTokens()
				get("after a refresh forced by a 401")
				if n := f.srv.RefreshCalls(); n != 2 || f.srv.Reuses() != 0 {
					t.Errorf("RefreshCalls=%d Reuses=%d, want 2 and 0", n, f.srv.Reuses())
				}
				now, err := f.token(session)
				if err != nil || now.TokenType != spelling || now.Type() != "Bearer" {
					t.Errorf("token after the refreshes: %v %v; want TokenType %q and Type Bearer", now, err, spelling)
				}
			})
		}
	}
}

// TestTokenType: Type is the canonical scheme for every spelling of
// bearer, and the raw value for other token types.
func TestTokenType(t *testing.T) {
	for raw, want := range map[string]string{
		"": "Bearer", "Bearer": "Bearer", "bearer": "Bearer", "BEARER": "Bearer", "bEaReR": "Bearer",
		"DPoP": "DPoP", "Bearer ": "Bearer", " bearer": "Bearer",
	} {
		if got := (&core.Token{TokenType: raw}).Type(); got != want {
			t.Errorf("Type of %q = %q, want %q", raw, got, want)
		}
	}
}
