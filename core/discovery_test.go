package core_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// smartDoc is a SMART configuration as the SMART App Launch example shows
// it, with endpoints on host.
func smartDoc(host string) string {
	return `{
  "issuer": "` + host + `",
  "jwks_uri": "` + host + `/.well-known/jwks.json",
  "authorization_endpoint": "` + host + `/auth/authorize",
  "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
  "token_endpoint": "` + host + `/auth/token",
  "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
  "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
  "registration_endpoint": "` + host + `/auth/register",
  "scopes_supported": ["openid", "profile", "launch", "launch/patient", "patient/*.rs", "user/*.rs", "offline_access"],
  "response_types_supported": ["code"],
  "management_endpoint": "` + host + `/user/manage",
  "introspection_endpoint": "` + host + `/user/introspect",
  "revocation_endpoint": "` + host + `/user/revoke",
  "capabilities": ["launch-ehr", "permission-patient", "permission-v2", "client-public", "client-confidential-symmetric", "context-ehr-patient", "sso-openid-connect"],
  "code_challenge_methods_supported": ["S256"]
}`
}

func TestParseSMARTConfiguration(t *testing.T) {
	c, err := core.ParseSMARTConfiguration([]byte(smartDoc("https://ehr.example.com")))
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenEndpoint != "https://ehr.example.com/auth/token" || c.RevocationEndpoint != "https://ehr.example.com/user/revoke" ||
		c.AuthorizationEndpoint != "https://ehr.example.com/auth/authorize" || c.Issuer != "https://ehr.example.com" ||
		c.IntrospectionEndpoint == "" || c.JWKSURI == "" {
		t.Errorf("endpoints: %+v", c)
	}
	if len(c.Capabilities) != 7 || len(c.ScopesSupported) != 7 || c.CodeChallengeMethodsSupported[0] != "S256" ||
		len(c.GrantTypesSupported) != 3 || len(c.TokenEndpointAuthSigningAlgValuesSupported) != 2 {
		t.Errorf("lists: %+v", c)
	}
	if c.Extra["management_endpoint"] != "https://ehr.example.com/user/manage" || c.Extra["registration_endpoint"] == nil {
		t.Errorf("Extra = %v", c.Extra)
	}
	if !strings.Contains(string(c.Raw), "sso-openid-connect") {
		t.Error("Raw not kept")
	}
	for m, want := range map[core.AuthMethod]bool{
		core.ClientSecretBasic: true, core.PrivateKeyJWT: true, core.ClientSecretPost: false, core.None: false,
	} {
		if c.Supports(m) != want {
			t.Errorf("Supports(%s) = %v", m, !want)
		}
	}
	if err := c.Check(core.ClientSecretBasic); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := c.Check(core.ClientSecretPost); !errors.Is(err, core.ErrDiscovery) || !strings.Contains(err.Error(), "lacks client_secret_post") {
		t.Errorf("Check(post) = %v", err)
	}
}

func TestParseSMARTConfigurationRejects(t *testing.T) {
	tests := []struct{ name, doc, reason string }{
		{"not JSON", `<html>Not Found</html>`, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"truncated", `{"token_endpoint":"https://e/t"`, "not a JSON object"},
		{"no token_endpoint", `{"authorization_endpoint":"https://e/a"}`, "token_endpoint is missing"},
		{"empty token_endpoint", `{"token_endpoint":""}`, "token_endpoint is missing"},
		{"token_endpoint not a string", `{"token_endpoint":42}`, "token_endpoint is not a string"},
		{"http token_endpoint", `{"token_endpoint":"http://ehr.example/token"}`, "token_endpoint must use https"},
		{"http revocation_endpoint", `{"token_endpoint":"https://e/t","revocation_endpoint":"http://e/r"}`, "revocation_endpoint must use https"},
		{"relative token_endpoint", `{"token_endpoint":"/token"}`, "token_endpoint must be an absolute URL"},
		{"capabilities not a list", `{"token_endpoint":"https://e/t","capabilities":"launch-ehr"}`, "capabilities is not an array of strings"},
		{"auth methods not strings", `{"token_endpoint":"https://e/t","token_endpoint_auth_methods_supported":[1]}`, "not an array of strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := core.ParseSMARTConfiguration([]byte(tt.doc))
			var de *core.DiscoveryError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, tt.reason) {
				t.Fatalf("err = %v, want reason %q", err, tt.reason)
			}
			if !errors.Is(err, core.ErrDiscovery) || !errors.Is(err, core.ErrMisconfigured) || errors.Is(err, core.ErrTransient) {
				t.Errorf("classes of %v", err)
			}
		})
	}
	// Loopback http and nulls are fine.
	if _, err := core.ParseSMARTConfiguration([]byte(`{"token_endpoint":"http://127.0.0.1:8080/token","capabilities":null}`)); err != nil {
		t.Errorf("loopback: %v", err)
	}
}

func TestCheck(t *testing.T) {
	c, err := core.ParseSMARTConfiguration([]byte(`{"token_endpoint":"https://e/t","code_challenge_methods_supported":["plain"],
		"grant_types_supported":["authorization_code"],"token_endpoint_auth_methods_supported":["client_secret_post"]}`))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Check(core.PrivateKeyJWT)
	for _, want := range []string{"lacks private_key_jwt", "lacks S256", "lacks refresh_token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v lacks %q", err, want)
		}
	}
	// Lists the document leaves out are not held against it.
	c, _ = core.ParseSMARTConfiguration([]byte(`{"token_endpoint":"https://e/t","capabilities":["client-confidential-asymmetric"]}`))
	if err := c.Check(core.PrivateKeyJWT); err != nil || !c.Supports(core.PrivateKeyJWT) || c.Supports(core.None) {
		t.Errorf("Check = %v, Supports = %v", err, c.Supports(core.PrivateKeyJWT))
	}
}

// docServer serves handler and counts its requests.
func docServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		handler(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, &calls
}

func serveDoc(doc func(host string) string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fhir/.well-known/smart-configuration" || r.Header.Get("Accept") != "application/json" {
			http.NotFound(w, r)
			return
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, doc("http://"+r.Host))
	}
}

func TestDiscover(t *testing.T) {
	ts, calls := docServer(t, serveDoc(smartDoc))
	d := &core.Discoverer{}
	for _, base := range []string{ts.URL + "/fhir", ts.URL + "/fhir/", ts.URL + "/fhir/.well-known/smart-configuration"} {
		c, err := d.Discover(context.Background(), base)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if c.TokenEndpoint != ts.URL+"/auth/token" {
			t.Errorf("token endpoint %q", c.TokenEndpoint)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d fetches for three calls, want 1 (cached)", n)
	}
}

func TestDiscoverErrors(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		reason    string
		transient bool
	}{
		{"404", http.NotFound, "not found (404)", false},
		{"HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, "<html><body>Sign in</body></html>")
		}, `not a JSON object (Content-Type "text/html")`, false},
		{"malformed JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"token_endpoint": "https://e/t",`)
		}, "not a JSON object", false},
		{"no token_endpoint", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"authorization_endpoint":"https://ehr.example/authorize","capabilities":[]}`)
		}, "token_endpoint is missing", false},
		{"http endpoint off loopback", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"token_endpoint":"http://ehr.example/token"}`)
		}, "token_endpoint must use https", false},
		{"larger than 1 MiB", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"token_endpoint":"https://e/t","x":"`+strings.Repeat("x", 1<<20)+`"}`)
		}, "larger than 1 MiB", false},
		{"503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, "answered 503", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, calls := docServer(t, tt.handler)
			d := &core.Discoverer{}
			for range 2 {
				_, err := d.Discover(context.Background(), ts.URL+"/fhir")
				var de *core.DiscoveryError
				if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("err = %v, want %q", err, tt.reason)
				}
				if de.URL != ts.URL+"/fhir/.well-known/smart-configuration" {
					t.Errorf("URL = %q", de.URL)
				}
				if !errors.Is(err, core.ErrDiscovery) || errors.Is(err, core.ErrTransient) != tt.transient ||
					errors.Is(err, core.ErrMisconfigured) == tt.transient {
					t.Errorf("classes of %v", err)
				}
			}
			if n := calls.Load(); n != 2 {
				t.Errorf("%d fetches, want 2: errors are not cached", n)
			}
		})
	}
}

func TestDiscoverRefusesBadBaseURLs(t *testing.T) {
	for _, base := range []string{"http://ehr.example/fhir", "ftp://ehr.example", "/fhir", "https://ehr.example/fhir?x=1", "https://u:p@ehr.example/fhir"} {
		_, err := core.Discover(context.Background(), base)
		if !errors.Is(err, core.ErrDiscovery) || !errors.Is(err, core.ErrMisconfigured) {
			t.Errorf("Discover(%q) = %v", base, err)
		}
	}
}

// docTransport serves requests in memory, for hosts that are not loopback.
type docTransport func(*http.Request) (*http.Response, error)

func (f docTransport) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDiscoverRemoteServerNeedsHTTPSEndpoints(t *testing.T) {
	serve := func(doc string) *http.Client {
		return &http.Client{Transport: docTransport(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(doc)), Request: r}, nil
		})}
	}
	// A remote document may not send the client to plain http, not even on
	// a loopback address.
	d := &core.Discoverer{HTTPClient: serve(`{"token_endpoint":"http://127.0.0.1/token"}`)}
	if _, err := d.Discover(context.Background(), "https://ehr.example/fhir"); err == nil || !strings.Contains(err.Error(), "must use https") {
		t.Errorf("err = %v", err)
	}
	d = &core.Discoverer{HTTPClient: serve(smartDoc("https://ehr.example"))}
	c, err := d.Discover(context.Background(), "https://ehr.example/fhir")
	if err != nil || c.TokenEndpoint != "https://ehr.example/auth/token" {
		t.Errorf("Discover = %v, %v", c, err)
	}
}

func TestDiscoverCacheHonoursCacheControl(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tests := []struct {
		name    string
		header  string
		advance time.Duration
		fetches int32
	}{
		{"default TTL holds", "", 59 * time.Minute, 1},
		{"default TTL of one hour ends", "", 61 * time.Minute, 2},
		{"max-age holds", "public, max-age=120", 119 * time.Second, 1},
		{"max-age ends", "public, max-age=120", 121 * time.Second, 2},
		{"no-store", "no-store", 0, 2},
		{"no-cache wins over max-age", "max-age=600, no-cache", 0, 2},
		{"max-age=0", "max-age=0", 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, calls := docServer(t, serveDoc(smartDoc, "Cache-Control", tt.header))
			d := &core.Discoverer{Now: clock}
			start := now
			defer func() { now = start }()
			if _, err := d.Discover(context.Background(), ts.URL+"/fhir"); err != nil {
				t.Fatal(err)
			}
			now = now.Add(tt.advance)
			if _, err := d.Discover(context.Background(), ts.URL+"/fhir"); err != nil {
				t.Fatal(err)
			}
			if n := calls.Load(); n != tt.fetches {
				t.Errorf("%d fetches, want %d", n, tt.fetches)
			}
		})
	}
}

func TestDiscoverConcurrentCallsShareOneFetch(t *testing.T) {
	release := make(chan struct{})
	ts, calls := docServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		serveDoc(smartDoc, "Cache-Control", "no-store")(w, r)
	})
	d := &core.Discoverer{}
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = d.Discover(context.Background(), ts.URL+"/fhir") })
	}
	time.Sleep(50 * time.Millisecond) // let the callers pile up
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("%d fetches for %d concurrent calls, want 1", c, n)
	}
}

func TestDiscoverTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts, _ := docServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	d := &core.Discoverer{Timeout: 50 * time.Millisecond}
	_, err := d.Discover(context.Background(), ts.URL+"/fhir")
	if !errors.Is(err, core.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&core.Discoverer{}).Discover(ctx, ts.URL+"/fhir"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestDiscoverSmarttestConfig: discovery against the strict mock gives a
// Config that refreshes; New refuses a method the server does not list.
func TestDiscoverSmarttestConfig(t *testing.T) {
	srv := smarttest.NewServer(smarttest.Options{AuthMethod: core.ClientSecretBasic})
	defer srv.Close()
	c, err := core.Discover(context.Background(), srv.FHIRBaseURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(core.ClientSecretBasic); err != nil {
		t.Errorf("Check: %v", err)
	}
	cfg := c.Config(core.Config{ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretBasic, Sessions: scs.New()})
	if cfg.TokenURL != srv.TokenURL || cfg.RevocationURL != srv.RevokeURL {
		t.Errorf("Config: %+v", cfg)
	}
	if _, err := core.New(cfg); err != nil {
		t.Errorf("New: %v", err)
	}
	cfg.AuthMethod = core.ClientSecretPost
	_, err = core.New(cfg)
	var ce *core.ConfigError
	if !errors.As(err, &ce) || ce.Field != "AuthMethod" || !strings.Contains(ce.Reason, "token_endpoint_auth_methods_supported") {
		t.Errorf("New with an unlisted method: %v", err)
	}
	// Fields the base sets win.
	if got := c.Config(core.Config{TokenURL: "https://other.example/token"}); got.TokenURL != "https://other.example/token" {
		t.Errorf("TokenURL overridden: %q", got.TokenURL)
	}
}

func TestDiscoveredSigningAlgIsChecked(t *testing.T) {
	c, err := core.ParseSMARTConfiguration([]byte(`{"token_endpoint":"https://e/t",
		"token_endpoint_auth_methods_supported":["private_key_jwt"],"token_endpoint_auth_signing_alg_values_supported":["ES384"]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Config(core.Config{ClientID: "c", AuthMethod: core.PrivateKeyJWT, PrivateKey: rsaKey(), KeyID: "k", Sessions: scs.New()})
	var ce *core.ConfigError
	if _, err := core.New(cfg); !errors.As(err, &ce) || ce.Field != "SigningAlg" {
		t.Errorf("RS384 key against an ES384-only server: %v", err)
	}
	cfg.PrivateKey = ecKey()
	if _, err := core.New(cfg); err != nil {
		t.Errorf("ES384: %v", err)
	}
}

func FuzzParseSMARTConfiguration(f *testing.F) {
	for _, s := range []string{
		smartDoc("https://ehr.example.com"),
		`{"token_endpoint":"http://127.0.0.1:1/t","capabilities":null}`,
		`{"token_endpoint":"https://e/t","token_endpoint_auth_methods_supported":["none"],"extra":{"a":[1,2,{"b":null}]}}`,
		`{"token_endpoint":"http://e/t"}`,
		`{"token_endpoint":"https://u:p@e/t"}`,
		`{"token_endpoint":42}`,
		`[]`, `null`, `<html></html>`, `{"token_endpoint":"https://e/t","x":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := core.ParseSMARTConfiguration(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("want exactly one of configuration and error, got %v, %v", c, err)
		}
		if err != nil {
			if !errors.Is(err, core.ErrDiscovery) || !errors.Is(err, core.ErrMisconfigured) {
				t.Fatalf("error of the wrong class: %v", err)
			}
			return
		}
		if c.TokenEndpoint == "" {
			t.Fatal("accepted a document without token_endpoint")
		}
		for _, e := range []string{c.TokenEndpoint, c.AuthorizationEndpoint, c.RevocationEndpoint, c.IntrospectionEndpoint, c.JWKSURI} {
			if e == "" {
				continue
			}
			// A URL's scheme is case-insensitive (RFC 3986 §3.1): "Https://" is https.
			if l := strings.ToLower(e); !strings.HasPrefix(l, "https://") && !strings.HasPrefix(l, "http://") {
				t.Fatalf("accepted endpoint %q", e)
			}
		}
		for _, m := range c.TokenEndpointAuthMethodsSupported {
			if !c.Supports(m) {
				t.Fatalf("listed method %q not supported", m)
			}
		}
		_ = c.Check(core.PrivateKeyJWT)
		cfg := c.Config(core.Config{})
		if cfg.TokenURL != c.TokenEndpoint {
			t.Fatal("Config lost the token endpoint")
		}
	})
}
