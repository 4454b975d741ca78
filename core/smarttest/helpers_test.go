package smarttest_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// response is an HTTP answer with its JSON body decoded, if any.
type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

func send(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header}
	json.Unmarshal(b, &r.body)
	return r
}

// authStyle is how a test client authenticates: one of the core.AuthMethod
// values, or a deliberately wrong mix.
type authStyle string

const (
	basicAndSecretInBody authStyle = "basic+client_secret"
	postAndHeader        authStyle = "client_secret_post+header"
)

// formRequest returns a form POST to u, authenticated as style with id and
// secret.
func formRequest(t *testing.T, u string, form url.Values, style authStyle, id, secret string) *http.Request {
	t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	basic := false
	switch style {
	case authStyle(core.ClientSecretPost):
		f.Set("client_id", id)
		f.Set("client_secret", secret)
	case authStyle(core.ClientSecretBasic):
		basic = true
	case authStyle(core.None):
		f.Set("client_id", id)
	case basicAndSecretInBody:
		basic = true
		f.Set("client_secret", secret)
	case postAndHeader:
		basic = true
		f.Set("client_id", id)
		f.Set("client_secret", secret)
	default:
		t.Fatalf("unknown auth style %q", style)
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(f.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return req
}

// post sends form to u authenticated the way s expects.
func post(t *testing.T, s *smarttest.Server, u string, form url.Values) response {
	t.Helper()
	o := s.Options()
	return send(t, http.DefaultClient, formRequest(t, u, form, authStyle(o.AuthMethod), o.ClientID, o.ClientSecret))
}

// refresh presents refreshToken to s.
func refresh(t *testing.T, s *smarttest.Server, refreshToken string) response {
	t.Helper()
	return post(t, s, s.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// fhirGet reads path under the FHIR base URL with accessToken.
func fhirGet(t *testing.T, s *smarttest.Server, accessToken, path string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.FHIRBaseURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	return send(t, http.DefaultClient, req)
}

// wantStatus fails t unless r has status want.
func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %v", r.status, want, r.body)
	}
}

// wantError fails t unless r is an OAuth error answer with status and code.
func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got %d %v, want %d error %q", r.status, r.body, status, code)
	}
}

func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

const redirectURI = "http://app.example/callback"

// registered are the redirect URIs the test client registers.
var registered = []string{redirectURI}

// authorizeQuery returns a valid authorization request for s.
func authorizeQuery(s *smarttest.Server, challenge string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {s.Options().ClientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {smarttest.DefaultScope},
		"state":                 {"st4te"},
		"aud":                   {s.FHIRBaseURL},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
}

var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// authorize sends q to the authorization endpoint and returns the status and
// the redirect's query, if any.
func authorize(t *testing.T, s *smarttest.Server, q url.Values) (int, url.Values) {
	t.Helper()
	res, err := noRedirect.Get(s.AuthorizeURL + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		return res.StatusCode, nil
	}
	loc, err := res.Location()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), redirectURI+"?") {
		t.Fatalf("redirected to %s, want %s", loc, redirectURI)
	}
	return res.StatusCode, loc.Query()
}

// code runs the authorization request and returns a code and its verifier.
func code(t *testing.T, s *smarttest.Server) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce()
	status, q := authorize(t, s, authorizeQuery(s, challenge))
	if status != http.StatusFound || q.Get("code") == "" || q.Get("state") != "st4te" {
		t.Fatalf("authorize: %d %v", status, q)
	}
	return q.Get("code"), verifier
}

// exchange trades code for tokens.
func exchange(t *testing.T, s *smarttest.Server, code, verifier string) response {
	t.Helper()
	return post(t, s, s.TokenURL, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	})
}

// clock is a fake clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
