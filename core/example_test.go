package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/alexedwards/scs/v2"
	"golang.org/x/oauth2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// A working configuration: Health Gorilla's sandbox through its preset
// (token endpoint, revocation, client_secret_post, and the FHIR base as
// the only place the token goes), with the app's client id and secret.
func ExampleNew() {
	sessionManager := scs.New()
	r, err := core.New(core.HealthGorillaSandbox.Config(core.Config{
		ClientID:     "my-client-id",
		ClientSecret: "my-client-secret", // from the environment or a secret store: os.Getenv("SMART_CLIENT_SECRET")
		Sessions:     sessionManager,
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r != nil, err)
	// Output: true <nil>
}

// A configuration New refuses says which field to fix, as a
// *core.ConfigError: here the secret that ClientSecretPost needs is missing.
func ExampleNew_configError() {
	sessionManager := scs.New()
	_, err := core.New(core.Config{
		TokenURL:     "https://api.healthgorilla.com/oauth/token",
		ClientID:     "my-client-id",
		ClientSecret: os.Getenv("SMARTREFRESH_EXAMPLE_UNSET_SECRET"),
		AuthMethod:   core.ClientSecretPost,
		Sessions:     sessionManager,
	})
	var cerr *core.ConfigError
	if errors.As(err, &cerr) {
		fmt.Println("fix", cerr.Field)
	}
	// Output: fix ClientSecret
}

// exampleApp runs handler in a request whose session holds a fresh grant of
// srv, as it would after the app's callback stored it.
func exampleApp(srv *smarttest.Server, cfg core.Config, handler func(r *core.Refresher, w http.ResponseWriter, req *http.Request)) {
	sm := scs.New()
	cfg.Sessions = sm
	cfg.TokenURL, cfg.ClientID, cfg.ClientSecret, cfg.AuthMethod = srv.TokenURL, "smart-client", "smart-secret", core.ClientSecretPost
	r, err := core.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Save(req.Context(), srv.Grant()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) { handler(r, w, req) })
	app := httptest.NewServer(sm.LoadAndSave(mux))
	defer app.Close()
	resp, err := http.Get(app.URL + "/callback")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", app.URL+"/", nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(os.Stdout, resp.Body)
	resp.Body.Close()
}

func ExampleRefresher_Token() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	exampleApp(srv, core.Config{}, func(r *core.Refresher, w http.ResponseWriter, req *http.Request) {
		tok, err := r.Token(req.Context())
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		fmt.Fprintf(w, "patient %s, token valid: %v\n", tok.Patient, tok.Valid(time.Now()))
	})
	// Output: patient 123, token valid: true
}

func ExampleRefresher_Client() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	exampleApp(srv, core.Config{}, func(r *core.Refresher, w http.ResponseWriter, req *http.Request) {
		srv.ExpireAccessTokens() // the FHIR server will answer 401 once
		resp, err := r.Client(req.Context()).Get(srv.FHIRBaseURL + "/Patient/123")
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		defer resp.Body.Close()
		fmt.Fprintln(w, resp.Status, "after", srv.RefreshCalls(), "refresh")
	})
	// Output: 200 OK after 1 refresh
}

func ExampleRefresher_Save() {
	// In the app's OAuth callback, after exchanging the code with
	// golang.org/x/oauth2 (AuthStyle set explicitly, never AutoDetect):
	callback := func(r *core.Refresher, conf *oauth2.Config, w http.ResponseWriter, req *http.Request, verifier string) {
		tok, err := conf.Exchange(req.Context(), req.FormValue("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			http.Error(w, "code exchange failed", http.StatusBadGateway)
			return
		}
		if err := r.Save(req.Context(), core.TokenFromOAuth2(tok)); err != nil {
			http.Error(w, "could not save the token", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, req, "/", http.StatusFound)
	}
	_ = callback
}

func ExampleRefresher_Info() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	exampleApp(srv, core.Config{}, func(r *core.Refresher, w http.ResponseWriter, req *http.Request) {
		info, err := r.Info(req.Context())
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		fmt.Fprintln(w, info.Patient, info.HasRefreshToken, info.Refreshes)
	})
	// Output: 123 true 0
}

func ExampleRefresher_Attach() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	exampleApp(srv, core.Config{}, func(r *core.Refresher, w http.ResponseWriter, req *http.Request) {
		// What every middleware adapter does.
		ctx, err := r.Attach(req.Context())
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		tok, ok := core.TokenFromContext(ctx)
		fmt.Fprintln(w, ok, tok.Patient)
	})
	// Output: true 123
}

func ExampleTokenFromContext() {
	handler := func(w http.ResponseWriter, req *http.Request) {
		tok, ok := core.TokenFromContext(req.Context())
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "patient", tok.Patient)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(core.NewContext(req.Context(), &core.Token{AccessToken: "x", Patient: "123"}))
	w := httptest.NewRecorder()
	handler(w, req)
	fmt.Print(w.Body.String())
	// Output: patient 123
}

func ExampleWriteError() {
	w := httptest.NewRecorder()
	core.WriteError(w, httptest.NewRequest("GET", "/", nil), core.ErrNoToken)
	fmt.Println(w.Code)
	fmt.Print(w.Body.String())
	// Output:
	// 401
	// {"error":"reauth_required","error_description":"no token in session; launch or log in"}
}

func ExampleToken_Format() {
	tok := core.Token{AccessToken: "secret-access", RefreshToken: "secret-refresh", TokenType: "Bearer",
		Expiry: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Scope: "patient/*.read", Patient: "123"}
	fmt.Println(tok)
	// Output: {[REDACTED] Bearer [REDACTED] exp=2026-01-02T03:04:05Z scope="patient/*.read" patient="123"}
}

func ExampleTokenFromOAuth2() {
	o := (&oauth2.Token{AccessToken: "at", TokenType: "Bearer"}).WithExtra(map[string]any{
		"patient": "123", "scope": "patient/*.read", "need_patient_banner": true,
	})
	tok := core.TokenFromOAuth2(o)
	fmt.Println(tok.Patient, tok.Scope, tok.Extra["need_patient_banner"])
	// Output: 123 patient/*.read true
}

func ExampleToken_OAuth2() {
	tok := &core.Token{AccessToken: "at", TokenType: "Bearer", Patient: "123"}
	// Use the token with code written for golang.org/x/oauth2.
	src := oauth2.StaticTokenSource(tok.OAuth2())
	o, _ := src.Token()
	fmt.Println(o.Type(), o.Extra("patient"))
	// Output: Bearer 123
}

func ExampleParseTokenResponse() {
	body := []byte(`{"access_token":"at","token_type":"bearer","expires_in":"3600","patient":"123","fhirContext":[{"reference":"Patient/123"}]}`)
	tok, err := core.ParseTokenResponse(200, http.Header{"Content-Type": {"application/json"}}, body, time.Unix(0, 0).UTC())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Patient, tok.Expiry.Format(time.RFC3339), tok.Extra["fhirContext"])

	_, err = core.ParseTokenResponse(400, http.Header{"Content-Type": {"application/json"}}, []byte(`{"error":"invalid_grant"}`), time.Now())
	fmt.Println(errors.Is(err, core.ErrReauthRequired))
	// Output:
	// 123 1970-01-01T01:00:00Z [map[reference:Patient/123]]
	// true
}

// An app that writes its answers its own way (Gin's c.JSON, say) takes the
// status and body from ErrorResponse.
func ExampleErrorResponse() {
	for _, err := range []error{core.ErrNoToken, core.ErrTransient, context.Canceled, core.ErrNoSession} {
		status, body := core.ErrorResponse(err)
		fmt.Println(status, body.Error)
	}
	// Output:
	// 401 reauth_required
	// 503 temporarily_unavailable
	// 503 temporarily_unavailable
	// 500 server_error
}
