package core_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// recorder is a RoundTripper that answers 200 to everything and records
// the requests it saw with their Authorization header.
type recorder struct {
	mu   sync.Mutex
	seen map[string]string // URL → Authorization
}

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.seen == nil {
		rec.seen = map[string]string{}
	}
	rec.seen[r.URL.String()] = r.Header.Get("Authorization")
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}, Request: r}, nil
}

func TestFHIRBaseURLs(t *testing.T) {
	rt := &recorder{}
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.FHIRBaseURLs = []string{"https://fhir.example/r4", "https://other.example:8443/"}
		c.HTTPClient = &http.Client{Transport: rt}
	})
	session, saved := f.login()
	client := f.r.Client(f.request(session))
	tests := []struct {
		url     string
		allowed bool
	}{
		{"https://fhir.example/r4", true},
		{"https://fhir.example/r4/", true},
		{"https://fhir.example/r4/Patient/1?_format=json", true},
		{"https://FHIR.example:443/r4/Patient", true},
		{"https://other.example:8443/anything", true},
		{"https://fhir.example/r4x", false},
		{"https://fhir.example/R4/Patient", false},
		{"https://fhir.example/", false},
		{"https://fhir.example:8443/r4", false},
		{"http://fhir.example/r4", false},
		{"https://other.example/anything", false},
		{"https://evil.example/r4", false},
		{"https://fhir.example.evil.example/r4", false},
		{"https://fhir.example/r4/../admin", false},
		{"https://fhir.example/r4/%2e%2E/admin", false},
		{"https://fhir.example/r4%2Fx", false},
		{"http://127.0.0.1/r4", false},
	}
	for _, tt := range tests {
		resp, err := client.Get(tt.url)
		if tt.allowed {
			if err != nil {
				t.Errorf("%s: %v", tt.url, err)
				continue
			}
			resp.Body.Close()
			if rt.seen[tt.url] != "Bearer "+saved.AccessToken {
				t.Errorf("%s: sent without the token", tt.url)
			}
			continue
		}
		var de *core.DestinationError
		if !errors.As(err, &de) || !errors.Is(err, core.ErrMisconfigured) {
			t.Errorf("%s: %v, want a DestinationError", tt.url, err)
		}
		if _, sent := rt.seen[tt.url]; sent {
			t.Errorf("%s: sent", tt.url)
		}
		if err != nil && strings.Contains(err.Error(), saved.AccessToken) {
			t.Errorf("%s: error shows the token", tt.url)
		}
	}
}

// TestPlainHTTPRefused: without FHIRBaseURLs, the token still never goes
// over plain http to a host that is not loopback.
func TestPlainHTTPRefused(t *testing.T) {
	rt := &recorder{}
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.HTTPClient = &http.Client{Transport: rt} })
	session, _ := f.login()
	client := f.r.Client(f.request(session))
	for _, u := range []string{"http://fhir.example/r4/Patient", "ftp://fhir.example/r4"} {
		_, err := client.Get(u)
		var de *core.DestinationError
		if !errors.As(err, &de) {
			t.Errorf("%s: %v, want a DestinationError", u, err)
		}
	}
	for _, u := range []string{"https://fhir.example/r4/Patient", "http://localhost:9/x", "http://[::1]:9/x"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		resp.Body.Close()
	}
	if len(rt.seen) != 3 {
		t.Errorf("sent %v", rt.seen)
	}
}

// TestRedirects: a redirect keeps the token only on the origin of the
// app's request (and under FHIRBaseURLs, when set); elsewhere it is
// followed without the token, as net/http does.
func TestRedirects(t *testing.T) {
	tests := []struct {
		bases   []string
		target  string
		withTok bool
	}{
		{nil, "https://fhir.example/r4/Binary/1/data", true},
		{nil, "https://fhir.example/elsewhere", true},
		{nil, "https://cdn.example/blob", false},
		{nil, "https://fhir.example:8443/r4/Binary/1/data", false},
		{nil, "http://fhir.example/r4/Binary/1/data", false},
		{[]string{"https://fhir.example/r4"}, "https://fhir.example/r4/Binary/1/data", true},
		{[]string{"https://fhir.example/r4"}, "https://fhir.example/admin", false},
		{[]string{"https://fhir.example/r4", "https://cdn.example"}, "https://cdn.example/blob", false},
	}
	for _, tt := range tests {
		rt := &redirector{to: tt.target}
		f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
			c.FHIRBaseURLs = tt.bases
			c.HTTPClient = &http.Client{Transport: rt}
		})
		session, saved := f.login()
		resp, err := f.r.Client(f.request(session)).Get("https://fhir.example/r4/Binary/1")
		if err != nil {
			t.Errorf("%v → %s: %v", tt.bases, tt.target, err)
			continue
		}
		resp.Body.Close()
		want := ""
		if tt.withTok {
			want = "Bearer " + saved.AccessToken
		}
		if rt.first != "Bearer "+saved.AccessToken || rt.second != want {
			t.Errorf("%v → %s: token sent %v then %v, want true then %v",
				tt.bases, tt.target, rt.first != "", rt.second != "", want != "")
		}
	}
}

// redirector answers the first request with a redirect to to, and the
// second with 200, recording their Authorization headers.
type redirector struct {
	to            string
	n             int
	first, second string
}

func (rd *redirector) RoundTrip(r *http.Request) (*http.Response, error) {
	rd.n++
	resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: r}
	if rd.n == 1 {
		rd.first = r.Header.Get("Authorization")
		resp.StatusCode = http.StatusFound
		resp.Header.Set("Location", rd.to)
	} else {
		rd.second = r.Header.Get("Authorization")
	}
	return resp, nil
}

// TestRedirectToAnotherServer: the real thing, through the mock FHIR
// server.
func TestRedirectToAnotherServer(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		io.WriteString(w, "binary")
	}))
	defer elsewhere.Close()
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	f.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path == "/fhir/Binary/1" {
			http.Redirect(w, r, elsewhere.URL+"/blob", http.StatusFound)
			return
		}
		next.ServeHTTP(w, r)
	})
	resp, err := f.r.Client(f.request(session)).Get(f.srv.FHIRBaseURL + "/Binary/1")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("redirect elsewhere: %v %v", resp, err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(auth) != 1 || auth[0] != "" {
		t.Errorf("the other server got Authorization %q", auth)
	}
}

func TestFHIRBaseURLsValidation(t *testing.T) {
	sm := scs.New()
	for _, bases := range [][]string{
		{"http://fhir.example/r4"},
		{"https://fhir.example/r4", "/r4"},
		{"https://fhir.example/r4?x=1"},
		{"https://fhir.example/r4#x"},
		{"https://u:p@fhir.example/r4"},
		{"https://fhir.example/r4/../admin"},
		{""},
	} {
		_, err := core.New(core.Config{TokenURL: "https://ehr.example/token", ClientID: "c", Sessions: sm, FHIRBaseURLs: bases})
		var ce *core.ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Field, "FHIRBaseURLs[") {
			t.Errorf("%q: %v, want a ConfigError for FHIRBaseURLs", bases, err)
		}
	}
	if _, err := core.New(core.Config{TokenURL: "https://ehr.example/token", ClientID: "c", Sessions: sm,
		FHIRBaseURLs: []string{"https://fhir.example/r4/", "http://127.0.0.1:8080/fhir"}}); err != nil {
		t.Errorf("valid bases: %v", err)
	}
}
