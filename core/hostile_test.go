package core_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestHostilePaths: with FHIRBaseURLs set, a path that a server could
// resolve outside the FHIR base is refused before anything is sent:
// dot segments with "\" as separator (IIS, some Java stacks), encoded or
// double-encoded, with Tomcat's ";" parameters, with trailing dots or
// spaces that Windows strips, or with control characters.
func TestHostilePaths(t *testing.T) {
	rt := &recorder{}
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.FHIRBaseURLs = []string{"https://fhir.example/r4"}
		c.HTTPClient = &http.Client{Transport: rt}
	})
	session, saved := f.login()
	client := f.r.Client(f.request(session))
	hostile := []string{
		`/r4/../admin`,
		`/r4/..\admin`,
		`/r4\..\admin`,
		`/r4/..%5Cadmin`,
		`/r4/..%5cadmin`,
		`/r4%5C..%5Cadmin`,
		`/r4/%2e%2e%5cadmin`,
		`/r4/.%2E\admin`,
		`/r4/..%255cadmin`,
		`/r4/%252e%252e/admin`,
		`/r4/%25252e%25252e/admin`,
		`/r4/..;/admin`,
		`/r4/..;x=1/admin`,
		`/r4/.../admin`,
		`/r4/..%20/admin`,
		`/r4/.\admin`,
		`/r4/Patient/..%00/admin`,
		`/r4/Patient%00`,
		`/r4/%2e%2e%2fadmin`,
	}
	for _, p := range hostile {
		req, err := http.NewRequest("GET", "https://fhir.example"+p, nil)
		if err != nil {
			// A path Go itself refuses to parse is fine too.
			continue
		}
		_, err = client.Do(req)
		var de *core.DestinationError
		if !errors.As(err, &de) || !errors.Is(err, core.ErrMisconfigured) {
			t.Errorf("%s: %v, want a DestinationError", p, err)
		}
		if err != nil && strings.Contains(err.Error(), saved.AccessToken) {
			t.Errorf("%s: error shows the token", p)
		}
	}
	for _, p := range []string{`/r4/Patient/1`, `/r4/Patient/a.b`, `/r4/Observation?code=a..b`, `/r4/Binary/x..y`, `/r4/Patient/.hidden`} {
		resp, err := client.Get("https://fhir.example" + p)
		if err != nil {
			t.Errorf("%s: %v, want it sent", p, err)
			continue
		}
		resp.Body.Close()
	}
	if len(rt.seen) != 5 {
		t.Errorf("sent %d requests, want the 5 harmless ones: %v", len(rt.seen), rt.seen)
	}
}

// TestHostHeader: with FHIRBaseURLs set, a request whose Host (req.Host)
// names another host than its URL is refused without being sent: a front
// end that routes by Host would hand the token to that other host. A Host
// that only spells the URL's host differently passes.
func TestHostHeader(t *testing.T) {
	rt := &recorder{}
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.FHIRBaseURLs = []string{"https://fhir.example/r4"}
		c.HTTPClient = &http.Client{Transport: rt}
	})
	session, _ := f.login()
	client := f.r.Client(f.request(session))
	for _, tt := range []struct {
		host string
		sent bool
	}{
		{"", true},
		{"fhir.example", true},
		{"FHIR.example:443", true},
		{"evil.example", false},
		{"fhir.example:8443", false},
		{"fhir.example.evil.example", false},
	} {
		rt.seen = nil
		req, _ := http.NewRequest("GET", "https://fhir.example/r4/Patient/1", nil)
		req.Host = tt.host
		resp, err := client.Do(req)
		if tt.sent {
			if err != nil {
				t.Errorf("Host %q: %v, want it sent", tt.host, err)
				continue
			}
			resp.Body.Close()
			continue
		}
		var de *core.DestinationError
		if !errors.As(err, &de) {
			t.Errorf("Host %q: %v, want a DestinationError", tt.host, err)
		}
		if len(rt.seen) != 0 {
			t.Errorf("Host %q: sent", tt.host)
		}
	}
}
