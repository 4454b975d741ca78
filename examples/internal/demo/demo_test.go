package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func env(secret string) func(string) string {
	return func(k string) string {
		if k == SecretEnv {
			return secret
		}
		return ""
	}
}

func TestParseFlagsEmbedded(t *testing.T) {
	c, err := ParseFlags("demo", nil, env(""), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded() || c.Addr != "127.0.0.1:8080" || c.TokenTTL != 30*time.Second || c.Scopes != DefaultScopes {
		t.Errorf("defaults = %+v", c)
	}
	if c.ClientID != embeddedClientID || c.ClientSecret != embeddedClientSecret || c.AuthMethod() != core.ClientSecretPost {
		t.Errorf("embedded client = %q, method %s", c.ClientID, c.AuthMethod())
	}
	if c.Metrics || c.RevokeURL != "" || c.RevokeStyle != core.RevokeRFC7009 {
		t.Errorf("defaults: metrics %v, revoke %q %s", c.Metrics, c.RevokeURL, c.RevokeStyle)
	}
}

func TestStartMockRevocation(t *testing.T) {
	for style, want := range map[string]func(*smarttest.Server) string{
		"rfc7009": func(s *smarttest.Server) string { return s.RevokeURL },
		"get":     func(s *smarttest.Server) string { return s.CancelURL },
	} {
		c, err := ParseFlags("demo", []string{"-revoke-style", style, "-metrics"}, env(""), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		srv := StartMock(&c, nil)
		if c.RevokeURL != want(srv) || !c.Metrics {
			t.Errorf("-revoke-style %s with the embedded server: RevokeURL %q, want %q (metrics %v)",
				style, c.RevokeURL, want(srv), c.Metrics)
		}
		srv.Close()
	}
}

func TestParseFlagsRealServer(t *testing.T) {
	args := []string{"-token-url", "https://ehr.example/token", "-authorize-url", "https://ehr.example/authorize",
		"-fhir-base", "https://ehr.example/fhir/", "-client-id", "app", "-scopes", "openid offline_access",
		"-redirect-url", "https://app.example/callback"}
	c, err := ParseFlags("demo", args, env(""), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded() || c.FHIRBase != "https://ehr.example/fhir" || c.ClientSecret != "" || c.AuthMethod() != core.None {
		t.Errorf("public client = %+v, method %s", c, c.AuthMethod())
	}
	c, err = ParseFlags("demo", args, env("s3cret"), io.Discard)
	if err != nil || c.ClientSecret != "s3cret" || c.AuthMethod() != core.ClientSecretPost {
		t.Errorf("confidential client: %v, method %s", err, c.AuthMethod())
	}
	if c.RevokeURL != "" {
		t.Errorf("RevokeURL without -revoke-url = %q, want empty (Log out only clears the session)", c.RevokeURL)
	}
	c, err = ParseFlags("demo", append(args, "-revoke-url", "https://ehr.example/oauth/cancel", "-revoke-style", "get"),
		env(""), io.Discard)
	if err != nil || c.RevokeURL != "https://ehr.example/oauth/cancel" || c.RevokeStyle != core.RevokeQueryGET {
		t.Errorf("-revoke-url -revoke-style get: %v, %q %s", err, c.RevokeURL, c.RevokeStyle)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-token-url", "https://x/token"}, "-fhir-base and -client-id"},
		{[]string{"-fhir-base", "https://x/fhir"}, "-client-id"},
		{[]string{"-token-url", "https://x/token", "-authorize-url", "https://x/a", "-client-id", "c"}, "-fhir-base"},
		{[]string{"-auth-method", "jwt"}, "-auth-method must be post, basic, none or private_key_jwt"},
		{[]string{"-auth-method", "none", "-key-id", "k"}, "-private-key and -key-id go with -auth-method private_key_jwt"},
		{[]string{"-iss", "https://x/fhir"}, "-fhir-base"},
		{[]string{"-token-url", "https://x/token", "-fhir-base", "https://x/fhir", "-client-id", "c",
			"-auth-method", "private_key_jwt"}, "needs -private-key"},
		{[]string{"-token-url", "https://x/token", "-fhir-base", "https://x/fhir", "-client-id", "c",
			"-auth-method", "basic"}, "needs the client secret"},
		{[]string{"-token-ttl", "0s"}, "-token-ttl"},
		{[]string{"-scopes", " "}, "-scopes"},
		{[]string{"-revoke-url", "https://x/revoke"}, "-fhir-base"},
		{[]string{"-revoke-style", "post"}, "-revoke-style must be rfc7009 or get"},
		{[]string{"-token-url", "https://x/token", "-authorize-url", "https://x/a", "-fhir-base", "https://x/fhir",
			"-client-id", "c", "-revoke-style", "get"}, "-revoke-style get needs -revoke-url"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-nope"}, "not defined"},
	} {
		_, err := ParseFlags("demo", tc.args, env(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := ParseFlags("demo", []string{"-help"}, env(""), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-help: %v", err)
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	if _, err := New(Config{TokenURL: "http://127.0.0.1/token"}, Options{}); err == nil {
		t.Error("New without RedirectURL and endpoints succeeded")
	}
	_, err := New(Config{TokenURL: "http://ehr.example/token", AuthorizeURL: "http://ehr.example/a",
		FHIRBase: "http://ehr.example/fhir", RedirectURL: "http://127.0.0.1/callback", ClientID: "c"}, Options{})
	if !errors.Is(err, core.ErrMisconfigured) {
		t.Errorf("New with a plain-http remote token URL: %v, want ErrMisconfigured", err)
	}
}

func TestErrorResponse(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{core.ErrNoToken, http.StatusUnauthorized, "reauth_required"},
		{fmt.Errorf("Get: %w", core.ErrNoRefreshToken), http.StatusUnauthorized, "reauth_required"},
		{fmt.Errorf("x: %w", core.ErrTransient), http.StatusServiceUnavailable, "temporarily_unavailable"},
		{context.Canceled, http.StatusServiceUnavailable, "temporarily_unavailable"},
		{&Error{http.StatusNotFound, "no_patient", "d"}, http.StatusNotFound, "no_patient"},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, http.StatusBadGateway, "fhir_unavailable"},
	} {
		status, body := ErrorResponse(tc.err)
		if status != tc.status || body.Error != tc.code {
			t.Errorf("ErrorResponse(%v) = %d %q, want %d %q", tc.err, status, body.Error, tc.status, tc.code)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		"0.0.0.0:80":     "localhost:80",
		"[::]:8080":      "localhost:8080",
		"[::1]:8080":     "[::1]:8080",
	} {
		addr, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := publicAddr(addr); got != want {
			t.Errorf("publicAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestDemoDiscoversFromFHIRBase (issue 19 item 16): with only -fhir-base
// and the client's credentials, the demo finds the token and authorization
// endpoints in the server's .well-known/smart-configuration, and a user can
// log in.
func TestDemoDiscoversFromFHIRBase(t *testing.T) {
	appSrv := httptest.NewUnstartedServer(nil)
	appURL := "http://" + appSrv.Listener.Addr().String()
	mock := smarttest.NewServer(smarttest.Options{RedirectURIs: []string{appURL + "/callback"}})
	defer mock.Close()
	o := mock.Options()
	c, err := ParseFlags("demo", []string{"-fhir-base", mock.FHIRBaseURL, "-client-id", o.ClientID,
		"-redirect-url", appURL + "/callback"}, env(o.ClientSecret), io.Discard)
	if err != nil {
		t.Fatalf("ParseFlags with only -fhir-base and the credentials: %v", err)
	}
	if c.Embedded() {
		t.Fatal("-fhir-base alone started the embedded server")
	}
	app, err := New(c, Options{})
	if err != nil {
		t.Fatalf("New with only FHIRBase: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/launch", app.Launcher.LaunchHandler())
	mux.Handle("/callback", app.Launcher.CallbackHandler())
	appSrv.Config.Handler = app.Sessions.LoadAndSave(mux)
	appSrv.Start()
	defer appSrv.Close()
	if _, err := mock.Login(smarttest.NewBrowser(), appURL+"/launch"); err != nil {
		t.Fatalf("login through the discovered endpoints: %v", err)
	}
	if mock.TokenCalls() != 1 {
		t.Errorf("%d token calls, want the code exchange", mock.TokenCalls())
	}
}
