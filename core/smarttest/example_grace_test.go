package smarttest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// A server with a reuse grace window accepts a rotated refresh token sent
// again soon after its rotation (a client resending a lost answer's
// request), as Amazon Cognito or Ory Hydra do; a strict server would
// revoke the grant.
func ExampleServer_GraceResends() {
	srv := smarttest.NewServer(smarttest.Options{ReuseGraceWindow: 30 * time.Second})
	defer srv.Close()
	refresh := srv.Grant().RefreshToken
	for range 2 { // the second: a resend of the same refresh token
		resp, err := http.PostForm(srv.TokenURL, url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {refresh}, "client_id": {"smart-client"}, "client_secret": {"smart-secret"}})
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println("grace resends:", srv.GraceResends(), "reuses:", srv.Reuses(), "revoked grants:", srv.RevokedGrants())
	// Output:
	// 200
	// 200
	// grace resends: 1 reuses: 0 revoked grants: 0
}
