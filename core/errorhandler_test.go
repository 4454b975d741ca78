package core_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
)

func TestErrorHandler(t *testing.T) {
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	tests := []struct {
		name     string
		login    string
		method   string
		path     string
		header   map[string]string
		err      error
		status   int
		location string
	}{
		{"navigation", "/launch", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "/launch?return_to=%2Fchart"},
		{"navigation by Accept", "/launch", "GET", "/chart", map[string]string{"Accept": browser}, core.ErrReauthRequired, 303, "/launch?return_to=%2Fchart"},
		{"HEAD navigation", "/launch", "HEAD", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "/launch?return_to=%2Fchart"},
		{"page with a query", "/launch", "GET", "/chart?tab=labs&p=a%26b", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "/launch?return_to=%2Fchart%3Ftab%3Dlabs%26p%3Da%2526b"},
		{"login URL with a query", "/launch?iss=x", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "/launch?iss=x&return_to=%2Fchart"},
		{"login URL with its own return_to", "/launch?return_to=%2Fhome", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "/launch?return_to=%2Fhome"},
		{"page SafeReturnTo refuses", "/launch", "GET", "//evil.example/x", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "/launch"},
		{"absolute login URL on this host", "http://example.com/launch", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "http://example.com/launch?return_to=%2Fchart"},
		{"absolute login URL on another host", "https://app.example/launch?iss=x", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 303, "https://app.example/launch?iss=x"},
		{"fetch with Accept text/html", "/launch", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "text/html"}, core.ErrNoToken, 401, ""},
		{"API call", "/launch", "GET", "/api/me", map[string]string{"Accept": "application/json"}, core.ErrNoToken, 401, ""},
		{"no Accept", "/launch", "GET", "/chart", nil, core.ErrNoToken, 401, ""},
		{"POST form", "/launch", "POST", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": browser}, core.ErrNoToken, 401, ""},
		{"the login page itself", "/launch", "GET", "/launch", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 401, ""},
		{"the login page with a slash", "/launch", "GET", "/launch/", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 401, ""},
		{"relative login URL resolving to the page", "launch", "GET", "/app/launch", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoToken, 401, ""},
		{"transient", "/launch", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrOutcomeUnknown, 503, ""},
		{"misconfigured", "/launch", "GET", "/chart", map[string]string{"Sec-Fetch-Mode": "navigate"}, core.ErrNoSession, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			core.ErrorHandler(tt.login, nil)(rec, req, tt.err)
			if rec.Code != tt.status || rec.Header().Get("Location") != tt.location {
				t.Fatalf("got %d Location %q, want %d %q", rec.Code, rec.Header().Get("Location"), tt.status, tt.location)
			}
			if tt.location == "" && tt.method != "HEAD" {
				var body core.ErrorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
					t.Errorf("body %q is not the JSON error", rec.Body.String())
				}
			}
		})
	}
}

func TestErrorHandlerRejectsBadLoginURL(t *testing.T) {
	for _, u := range []string{"", "javascript:alert(1)", "https://", "::"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("ErrorHandler(%q) did not panic", u)
				}
			}()
			core.ErrorHandler(u, nil)
		}()
	}
}
