package smarttest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func ExampleNewServer() {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()

	// A grant as if the user had just logged in.
	tok := s.Grant()
	fmt.Println(tok.Patient, tok.Extra["need_patient_banner"])

	// Refreshing rotates the refresh token.
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok.RefreshToken},
		"client_id":     {"smart-client"},
		"client_secret": {"smart-secret"},
	}
	res, err := http.PostForm(s.TokenURL, form)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode)

	// Sending the old refresh token again is a reuse: the grant is revoked.
	res, err = http.PostForm(s.TokenURL, form)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode, s.Reuses(), s.RevokedGrants())

	// Its access tokens no longer work.
	req, _ := http.NewRequest("GET", s.FHIRBaseURL+"/Patient/"+tok.Patient, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode, res.Header.Get("WWW-Authenticate"))

	// Output:
	// 123 true
	// 200
	// 400 1 1
	// 401 Bearer error="invalid_token"
}

func ExampleServer_SetTokenHook() {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	tok := s.Grant()

	// Lose the answer to the next token request after the server acted on it.
	s.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(httptest.NewRecorder(), r)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok.RefreshToken},
		"client_id":     {"smart-client"},
		"client_secret": {"smart-secret"},
	}
	res, err := http.PostForm(s.TokenURL, form)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode, s.RefreshCalls(), s.Reuses())

	// A client that retries with the same refresh token is caught reusing it.
	s.SetTokenHook(nil)
	res, err = http.PostForm(s.TokenURL, form)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode, s.RefreshCalls(), s.Reuses())

	// Output:
	// 503 1 0
	// 400 2 1
}

// New makes a server that does not listen, for apps that serve its handler
// themselves at a known address.
func ExampleNew() {
	s := smarttest.New("http://127.0.0.1:9999", smarttest.Options{AccessTokenTTL: 30 * time.Second})
	fmt.Println(s.TokenURL)
	fmt.Println(s.FHIRBaseURL)
	_ = s.Handler() // http.ListenAndServe("127.0.0.1:9999", s.Handler())
	// Output:
	// http://127.0.0.1:9999/token
	// http://127.0.0.1:9999/fhir
}

// Grant issues a grant as if the authorization-code flow had just
// completed, for tests that skip the browser.
func ExampleServer_Grant() {
	s := smarttest.NewServer(smarttest.Options{AccessTokenTTL: time.Hour})
	defer s.Close()
	tok := s.Grant()
	fmt.Println(tok.Patient, tok.Scope, tok.RefreshToken != "", time.Until(tok.Expiry).Round(time.Minute))
	// Output: 123 launch/patient patient/*.read openid fhirUser offline_access true 1h0m0s
}

// ExpireAccessTokens makes the FHIR endpoint answer 401 to every access
// token issued so far, to exercise an app's 401 path.
func ExampleServer_ExpireAccessTokens() {
	s := smarttest.NewServer(smarttest.Options{})
	defer s.Close()
	tok := s.Grant()
	s.ExpireAccessTokens()
	req, _ := http.NewRequest("GET", s.FHIRBaseURL+"/Patient/123", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println(res.StatusCode, s.FHIRCalls())
	// Output: 401 1
}

// A Clock lets a test move past a token's expiry without waiting.
func ExampleClock() {
	clock := smarttest.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	s := smarttest.NewServer(smarttest.Options{AccessTokenTTL: 30 * time.Second, Now: clock.Now})
	defer s.Close()
	tok := s.Grant()
	clock.Advance(31 * time.Second)
	fmt.Println(tok.Expiry.Format(time.TimeOnly), tok.Valid(clock.Now()))
	// core.Config{..., Now: clock.Now} makes the Refresher refresh it.
	// Output: 12:00:30 false
}
