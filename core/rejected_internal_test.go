package core

import (
	"strings"
	"testing"
)

func TestBearerErrorCode(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`Bearer error="invalid_token"`, "invalid_token"},
		{`Bearer realm="fhir", error="insufficient_scope", error_description="needs patient/*.read"`, "insufficient_scope"},
		{`Bearer ERROR=invalid_token`, "invalid_token"},
		{`Bearer`, ""},
		{``, ""},
		{`Bearer realm="x"`, ""},
		{`Bearer error="` + strings.Repeat("a", 65) + `"`, ""},
		{"Bearer error=\"bad\x00code\"", ""},
		{`Bearer error="quote\"d"`, ""},
	} {
		if got := bearerErrorCode(tt.in); got != tt.want {
			t.Errorf("bearerErrorCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzBearerErrorCode feeds the WWW-Authenticate parser arbitrary headers
// of a FHIR server: it must not panic, and what it returns is a short
// printable code that cannot break a log line or an error message.
func FuzzBearerErrorCode(f *testing.F) {
	for _, s := range []string{`Bearer error="invalid_token"`, `Bearer realm="a", error=x`, `Bearer error="\"`, "Bearer error=\"\xff\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, challenge string) {
		code := bearerErrorCode(challenge)
		if len(code) > 64 {
			t.Fatalf("code of %d bytes", len(code))
		}
		for _, c := range code {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				t.Fatalf("code %q has %q", code, c)
			}
		}
	})
}
