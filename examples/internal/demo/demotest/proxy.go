package demotest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
)

// TokenRejected: a FHIR server that rejects every token, even the one a
// refresh just obtained, is reported as such (403 token_rejected) by
// /api/patient and by the FHIR proxy, from its first 401 on, and gets one
// refresh, not one per request.
func TokenRejected(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	e.Launch()
	e.Mock.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	for i := range 2 {
		if status, body := e.Get("/api/patient"); status != http.StatusForbidden || !strings.Contains(body, `"token_rejected"`) {
			t.Errorf("GET /api/patient #%d from a server that rejects fresh tokens: %d %s, want 403 token_rejected", i+1, status, body)
		}
		if status, body := e.Proxy("Patient/123"); status != http.StatusForbidden || !strings.Contains(body, `"token_rejected"`) {
			t.Errorf("GET %sPatient/123 #%d: %d %s, want 403 token_rejected", demo.ProxyPrefix, i+1, status, body)
		}
	}
	if n := e.Mock.RefreshCalls(); n != 1 {
		t.Errorf("refresh calls = %d, want 1", n)
	}
}

// ProxyPaths: through the example's own router (Echo's and Gin's
// wildcards do not clean the path), a path a server could resolve outside
// the FHIR base gets 400 and never reaches the FHIR server.
func ProxyPaths(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	e.Launch()
	for _, p := range []string{"..;/admin", "%2e%2e;/admin", "%2e%2e%3b/admin", ".../admin", "..%20/admin", "Patient%00", "Patient%0d%0aX:%201", "Patient%7f"} {
		before := e.Mock.FHIRCalls()
		status, body := e.Proxy(p)
		if status != http.StatusBadRequest || e.Mock.FHIRCalls() != before {
			t.Errorf("GET %s%s: %d %s, %d FHIR calls; want 400 and none", demo.ProxyPrefix, p, status, body, e.Mock.FHIRCalls()-before)
		}
	}
}
