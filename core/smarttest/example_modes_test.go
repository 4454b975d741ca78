package smarttest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// A test that mirrors a server whose access tokens are self-contained (they
// stay valid after a refresh), that spells token_type "bearer", and that
// revokes the whole grant when a rotated refresh token is revoked.
func ExampleOptions() {
	s := smarttest.NewServer(smarttest.Options{
		AccessOnRefresh: smarttest.AccessKeptOnRefresh,
		TokenType:       "bearer",
		RevokeRotated:   smarttest.RevokeRotatedGrant,
	})
	defer s.Close()
	tok := s.Grant()
	fmt.Println(tok.TokenType)

	res, err := http.PostForm(s.TokenURL, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		"client_id": {"smart-client"}, "client_secret": {"smart-secret"},
	})
	if err != nil {
		panic(err)
	}
	res.Body.Close()

	// The pre-refresh access token still works.
	req, _ := http.NewRequest("GET", s.FHIRBaseURL+"/Patient/123", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if res, err = http.DefaultClient.Do(req); err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode)

	// Revoking the rotated refresh token revokes the grant.
	if res, err = http.PostForm(s.RevokeURL, url.Values{
		"token": {tok.RefreshToken}, "client_id": {"smart-client"}, "client_secret": {"smart-secret"},
	}); err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode, s.RevokedGrants())
	// Output:
	// bearer
	// 200
	// 200 1
}

// The id_token of a grant, verified as an OpenID Connect client does: the
// provider is discovered from the server's URL, the issuer.
func ExampleServer_JWKSURL() {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	ctx := context.Background()

	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		panic(err)
	}
	idToken, err := provider.Verifier(&oidc.Config{ClientID: "smart-client"}).Verify(ctx, s.Grant().IDToken)
	if err != nil {
		panic(err)
	}
	var claims struct {
		FHIRUser string `json:"fhirUser"`
	}
	if err := idToken.Claims(&claims); err != nil {
		panic(err)
	}
	fmt.Println(idToken.Subject, claims.FHIRUser == s.FHIRBaseURL+"/Patient/123")
	// Output: Patient/123 true
}
