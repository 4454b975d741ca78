package core

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

func TestParseTokenResponse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Token
	}{
		{
			name: "SMART example with launch context",
			body: `{"access_token":"at","token_type":"Bearer","expires_in":3600,"scope":"patient/*.read openid fhirUser",
				"refresh_token":"rt","patient":"123","encounter":"456","need_patient_banner":true,
				"smart_style_url":"https://ehr/style.json","fhirContext":[{"reference":"Patient/123"}]}`,
			want: Token{AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt", Expiry: t0.Add(time.Hour),
				Scope: "patient/*.read openid fhirUser", Patient: "123", Encounter: "456",
				Extra: map[string]any{"need_patient_banner": true, "smart_style_url": "https://ehr/style.json",
					"fhirContext": []any{map[string]any{"reference": "Patient/123"}}}},
		},
		{
			name: "lowercase bearer and numeric string expires_in",
			body: `{"access_token":"at","token_type":"bearer","expires_in":"3600","scope":"user/."}`,
			want: Token{AccessToken: "at", TokenType: "bearer", Expiry: t0.Add(time.Hour), Scope: "user/."},
		},
		{
			name: "no expires_in, no refresh token",
			body: `{"access_token":"at","token_type":"Bearer"}`,
			want: Token{AccessToken: "at", TokenType: "Bearer"},
		},
		{
			name: "missing token_type taken as Bearer",
			body: `{"access_token":"at","expires_in":60.0}`,
			want: Token{AccessToken: "at", TokenType: "Bearer", Expiry: t0.Add(time.Minute)},
		},
		{
			name: "null fields ignored",
			body: `{"access_token":"at","token_type":"Bearer","refresh_token":null,"expires_in":null}`,
			want: Token{AccessToken: "at", TokenType: "Bearer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokenResponse(200, jsonHeader(), []byte(tt.body), t0)
			if err != nil {
				t.Fatal(err)
			}
			if !equalTokens(got, &tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseTokenResponseRejects(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		header  http.Header
		body    string
		class   error
		code    string
		snippet string // must appear in the message
	}{
		{"empty access_token", 200, jsonHeader(), `{"access_token":"","token_type":"Bearer"}`, ErrTransient, "", "access_token"},
		{"missing access_token", 200, jsonHeader(), `{"token_type":"Bearer"}`, ErrTransient, "", "access_token"},
		{"wrong token type", 200, jsonHeader(), `{"access_token":"at","token_type":"mac"}`, ErrTransient, "", `"mac" is not Bearer`},
		{"access_token not a string", 200, jsonHeader(), `{"access_token":42}`, ErrTransient, "", "access_token is not a string"},
		{"negative expires_in", 200, jsonHeader(), `{"access_token":"at","expires_in":-5}`, ErrTransient, "", "out of range"},
		{"absurd expires_in", 200, jsonHeader(), `{"access_token":"at","expires_in":1e12}`, ErrTransient, "", "out of range"},
		{"expires_in word", 200, jsonHeader(), `{"access_token":"at","expires_in":"soon"}`, ErrTransient, "", "not a number"},
		{"truncated JSON", 200, jsonHeader(), `{"access_token":"at","tok`, ErrTransient, "", "not a JSON object"},
		{"JSON array", 200, jsonHeader(), `[1,2]`, ErrTransient, "", "not a JSON object"},
		{"HTML page at 200", 200, http.Header{"Content-Type": {"text/html"}}, `<html>sign in</html>`, ErrTransient, "", "text/html"},
		{"invalid_grant", 400, jsonHeader(), `{"error":"invalid_grant","error_description":"refresh token revoked"}`, ErrReauthRequired, "invalid_grant", "refresh token revoked"},
		{"invalid_client at 401", 401, jsonHeader(), `{"error":"invalid_client"}`, ErrMisconfigured, "invalid_client", "check ClientID"},
		{"unauthorized_client at 403", 403, jsonHeader(), `{"error":"unauthorized_client"}`, ErrMisconfigured, "unauthorized_client", "AuthMethod"},
		{"invalid_scope", 400, jsonHeader(), `{"error":"invalid_scope"}`, ErrMisconfigured, "invalid_scope", "check Scope"},
		{"HTML 404", 404, http.Header{"Content-Type": {"text/html; charset=utf-8"}}, `<h1>Not Found</h1>`, ErrMisconfigured, "", "check TokenURL"},
		{"HTML 502 from a proxy", 502, http.Header{"Content-Type": {"text/html"}}, `<h1>Bad Gateway</h1>`, ErrTransient, "", "502"},
		{"429", 429, http.Header{"Retry-After": {"7"}}, ``, ErrTransient, "", "429"},
		{"500 JSON", 500, jsonHeader(), `{"error":"server_error"}`, ErrTransient, "server_error", "500"},
	}
	classes := []error{ErrReauthRequired, ErrTransient, ErrMisconfigured}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseTokenResponse(tt.status, tt.header, []byte(tt.body), t0)
			if err == nil {
				t.Fatalf("accepted: %v", tok)
			}
			for _, c := range classes {
				if errors.Is(err, c) != (c == tt.class) {
					t.Errorf("errors.Is(err, %v) = %v; err = %v", c, !(c == tt.class), err)
				}
			}
			if !strings.Contains(err.Error(), tt.snippet) {
				t.Errorf("error %q does not mention %q", err, tt.snippet)
			}
			var te *TokenError
			if tt.code != "" && (!errors.As(err, &te) || te.Code != tt.code) {
				t.Errorf("want *TokenError with code %q, got %#v", tt.code, err)
			}
		})
	}
}

func TestParseErrorResponseIsBounded(t *testing.T) {
	body := `{"error":"invalid_grant","error_description":"` + strings.Repeat("x", 10000) + `"}`
	_, err := ParseTokenResponse(400, jsonHeader(), []byte(body), t0)
	if n := len(err.Error()); n > 512 {
		t.Errorf("error message is %d bytes long", n)
	}
}

func TestRetryAfter(t *testing.T) {
	_, err := ParseTokenResponse(503, http.Header{"Retry-After": {"7"}}, nil, t0)
	if d, ok := RetryAfter(err); !ok || d != 7*time.Second {
		t.Errorf("RetryAfter = %v, %v; want 7s", d, ok)
	}
	if _, ok := RetryAfter(errors.New("x")); ok {
		t.Error("RetryAfter of a plain error")
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	seeds := []string{
		`{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","patient":"123"}`,
		`{"access_token":"at","token_type":"bearer","expires_in":"3600"}`,
		`{"access_token":"at","fhirContext":[{"reference":"Patient/1"}],"need_patient_banner":true}`,
		`{"error":"invalid_grant"}`,
		`<html></html>`,
		`{"access_token":"at","expires_in":1e400}`,
		`{"access_token":"at","expires_in":"-1"}`,
	}
	for _, s := range seeds {
		f.Add(200, s)
		f.Add(400, s)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		tok, err := ParseTokenResponse(status, jsonHeader(), []byte(body), t0)
		if (tok == nil) == (err == nil) {
			t.Fatalf("want exactly one of token and error, got %v, %v", tok, err)
		}
		if err != nil {
			return
		}
		if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
			t.Fatalf("accepted an unusable token %v", tok)
		}
		if !tok.Expiry.IsZero() && !tok.Expiry.After(t0) {
			t.Fatalf("accepted an expiry in the past: %v", tok.Expiry)
		}
	})
}

// equalTokens compares tokens field by field, Extra by its JSON.
func equalTokens(a, b *Token) bool {
	ea, _ := jsonMarshal(a.Extra)
	eb, _ := jsonMarshal(b.Extra)
	return a.AccessToken == b.AccessToken && a.TokenType == b.TokenType &&
		a.RefreshToken == b.RefreshToken && a.Expiry.Equal(b.Expiry) && a.Scope == b.Scope &&
		a.IDToken == b.IDToken && a.Patient == b.Patient && a.Encounter == b.Encounter &&
		string(ea) == string(eb)
}
