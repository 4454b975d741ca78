package core

import (
	"errors"
	"net/http"
	"net/url"
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
			name: "unusable expires_in: expiry unknown, raw value kept",
			body: `{"access_token":"at","token_type":"Bearer","expires_in":-5,"refresh_token":"rt2"}`,
			want: Token{AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt2", Extra: map[string]any{"expires_in": -5.0}},
		},
		{
			name: "absurd expires_in",
			body: `{"access_token":"at","expires_in":1e12}`,
			want: Token{AccessToken: "at", TokenType: "Bearer", Extra: map[string]any{"expires_in": 1e12}},
		},
		{
			name: "expires_in word",
			body: `{"access_token":"at","expires_in":"soon"}`,
			want: Token{AccessToken: "at", TokenType: "Bearer", Extra: map[string]any{"expires_in": "soon"}},
		},
		{
			name: "non-string context kept in Extra",
			body: `{"access_token":"at","patient":123,"scope":["a","b"]}`,
			want: Token{AccessToken: "at", TokenType: "Bearer", Extra: map[string]any{"patient": 123.0, "scope": []any{"a", "b"}}},
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
		{"wrong token type", 200, jsonHeader(), `{"access_token":"at","token_type":"mac"}`, ErrTransient, "", `"MAC" is not Bearer`},
		{"access_token not a string", 200, jsonHeader(), `{"access_token":42}`, ErrTransient, "", "access_token is not a string"},
		{"refresh_token not a string", 200, jsonHeader(), `{"access_token":"at","refresh_token":7}`, ErrTransient, "", "refresh_token is not a string"},
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
		// Issue 19 item 7: a 200 carrying an OAuth error and no token is
		// classed by its code.
		{"invalid_grant at 200", 200, jsonHeader(), `{"error":"invalid_grant"}`, ErrReauthRequired, "invalid_grant", "200 invalid_grant"},
		{"invalid_client at 200", 200, jsonHeader(), `{"error":"invalid_client"}`, ErrMisconfigured, "invalid_client", "check ClientID"},
		{"temporarily_unavailable at 200", 200, jsonHeader(), `{"error":"temporarily_unavailable"}`, ErrTransient, "temporarily_unavailable", "200"},
		{"server_error at 400", 400, jsonHeader(), `{"error":"server_error"}`, ErrTransient, "server_error", "400"},
		{"BOM before an error", 400, jsonHeader(), "\xef\xbb\xbf" + `{"error":"invalid_grant"}`, ErrReauthRequired, "invalid_grant", "invalid_grant"},
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

// fuzzContentTypes are the Content-Types FuzzParseTokenResponse answers with.
var fuzzContentTypes = []string{"application/json", "text/html", "text/plain; charset=utf-8", "", "application/x-www-form-urlencoded"}

// FuzzParseTokenResponse: every answer gives exactly one of a usable token
// and an error, and the error of a refresh (parseAnswer, as the Refresher
// builds it, with the snippet) never shows a string value of a 2xx answer,
// nor one under a token field of any answer, however the body is escaped
// or cut, beyond the fixed text every such error has.
func FuzzParseTokenResponse(f *testing.F) {
	seeds := []string{
		`{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","patient":"123"}`,
		`{"access_token":"at","token_type":"bearer","expires_in":"3600"}`,
		`{"access_token":"at","fhirContext":[{"reference":"Patient/1"}],"need_patient_banner":true}`,
		`{"error":"invalid_grant"}`,
		`<html></html>`,
		`{"access_token":"at","expires_in":1e400}`,
		`{"access_token":"at","expires_in":"-1"}`,
		`{"\u0061ccess_token":"fresh-access-0123456789","token_type":"DPoP","refresh\u005ftoken":"fresh-refresh-0123456789"}`,
		`{"access_token":"fresh-access-0123456789","token_type":"fresh-access-0123456789"}`,
		`{"error":"invalid_request","error_description":"fresh-access-0123456789","access_token":"fresh-access-0123456789"}`,
		`{"token_type":"Bearer","\u0061ccess_token":"fresh-access-0123456789","x":"fresh-refresh-0123456789`,
		`access%5Ftoken=fresh-access-0123456789`,
		`{"error":"x","error_description":"fresh-\u0001access-0123456789","access_token":"fresh-access-0123456789"}`,
		"\xef\xbb\xbf" + `{"access_token":"at","token_type":"Bearer","refresh_token":"fresh-refresh-0123456789"}`,
		`{"access_token":"at","refresh_token":"fresh-refresh-0123456789"}<!-- node 3 -->` + "\n",
		`{"access_token":"at"}` + "\n" + `{"access_token":"other-access-0123456789"}`,
		`{"error":"invalid_grant","error_description":"fresh-refresh-0123456789","refresh_token":"fresh-refresh-0123456789"}`,
		"\xef\xbb\xbf" + `{"error":"invalid_grant"}trailing`,
	}
	for _, s := range seeds {
		f.Add(200, uint8(0), s)
		f.Add(400, uint8(0), s)
		f.Add(502, uint8(2), s)
	}
	const sentRefresh = "sent-refresh-0123456789"
	sent := secrets{"sent-client-secret", sentRefresh}
	f.Fuzz(func(t *testing.T, status int, ctype uint8, body string) {
		header := http.Header{"Content-Type": {fuzzContentTypes[int(ctype)%len(fuzzContentTypes)]}}
		tok, err := ParseTokenResponse(status, header, []byte(body), t0)
		if (tok == nil) == (err == nil) {
			t.Fatalf("want exactly one of token and error, got %v, %v", tok, err)
		}
		// A byte order mark before the answer, and bytes after its JSON
		// object, change nothing (issue 19 item 1): the code exchange and
		// rotatedAway read the same object.
		odds := []string{body + "<!-- node 3 -->\n"}
		if !strings.HasPrefix(body, "\xef\xbb\xbf") {
			odds = append(odds, "\xef\xbb\xbf"+body)
		}
		for _, odd := range odds {
			tok2, err2 := ParseTokenResponse(status, header, []byte(odd), t0)
			if err == nil && (err2 != nil || !equalTokens(tok, tok2)) {
				t.Fatalf("an odd copy of a usable answer was read differently: %v, %v", tok2, err2)
			}
			if rotatedAway([]byte(odd), sentRefresh) != rotatedAway([]byte(body), sentRefresh) && strings.HasPrefix(odd, "\xef") {
				t.Fatalf("rotatedAway reads a body with a byte order mark differently")
			}
		}
		if err == nil {
			if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
				t.Fatalf("accepted an unusable token %v", tok)
			}
			if !tok.Expiry.IsZero() && !tok.Expiry.After(t0) {
				t.Fatalf("accepted an expiry in the past: %v", tok.Expiry)
			}
			return
		}
		_, _, err = parseAnswer(status, header, []byte(body), t0, sent, sentRefresh)
		msg := err.Error()
		jt := decodeJSONText([]byte(body))
		check := jt.hidden
		inner := err
		if ur := (*UnusableRotationError)(nil); errors.As(err, &ur) {
			// An OAuth error body that rotated the refresh token as well:
			// its error code shows, as any OAuth error's does.
			inner = ur.Err
		}
		if status >= 200 && status <= 299 && !errors.As(inner, new(*TokenError)) {
			// A 2xx answer other than an OAuth error may carry a fresh
			// token anywhere: none of its text may show.
			check = jt.values
		}
		vocab := errorVocabulary(status, header)
		for _, v := range check {
			// Brackets could re-form a value around a [REDACTED].
			if len(v) < 8 || strings.ContainsAny(v, "[]") || strings.Contains(vocab, v) {
				continue
			}
			if strings.Contains(msg, v) {
				t.Fatalf("the error shows %q of the answer:\n%s", v, msg)
			}
		}
		for _, s := range sent {
			if strings.Contains(msg, s) {
				t.Fatalf("the error shows the secret %q sent:\n%s", s, msg)
			}
		}
	})
}

// errorVocabulary is the fixed text the errors of answers with status and
// header can have, whatever the body: the messages for bodies that hold no
// string a server chose.
func errorVocabulary(status int, header http.Header) string {
	bodies := []string{``, `{}`, `[]`, `x`, `{"access_token":1}`, `{"access_token":"x","token_type":1}`,
		`{"access_token":"x","refresh_token":1}`, `{"access_token":"x","token_type":"not-a-type"}`}
	for _, k := range knownTokenTypes {
		bodies = append(bodies, `{"access_token":"x","token_type":"`+k+`"}`)
	}
	for k := range knownErrorCodes {
		bodies = append(bodies, `{"error":"`+k+`"}`)
	}
	var b strings.Builder
	for _, body := range bodies {
		if _, err := ParseTokenResponse(status, header, []byte(body), t0); err != nil {
			b.WriteString(err.Error() + "\n")
		}
	}
	b.WriteString((&UnusableRotationError{Err: errors.New("")}).Error() + redacted + " answer larger than 1 MiB")
	return b.String()
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

// TestParseTokenResponseRealWorld: answers as servers send them, from the
// SMART App Launch examples and Health Gorilla's documentation.
func TestParseTokenResponseRealWorld(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Token
	}{
		{
			name: "Health Gorilla refresh: scope user/. without offline_access",
			body: `{"access_token":"hg-at","token_type":"Bearer","expires_in":3600,"scope":"user/.","refresh_token":"hg-rt"}`,
			want: Token{AccessToken: "hg-at", TokenType: "Bearer", RefreshToken: "hg-rt", Expiry: t0.Add(time.Hour), Scope: "user/."},
		},
		{
			name: "Health Gorilla refresh without a new refresh token",
			body: `{"access_token":"hg-at","token_type":"Bearer","expires_in":3600,"scope":"user/."}`,
			want: Token{AccessToken: "hg-at", TokenType: "Bearer", Expiry: t0.Add(time.Hour), Scope: "user/."},
		},
		{
			name: "SMART v2 launch: intent, tenant and every fhirContext shape",
			body: `{
				"access_token": "m7rt6i7s9nuxkjvi8vsx",
				"token_type": "Bearer",
				"expires_in": 3600,
				"scope": "launch/patient patient/Observation.rs patient/Patient.rs",
				"intent": "client-ui-name",
				"patient": "123",
				"encounter": "456",
				"fhirContext": [
					{"reference": "Appointment/789"},
					{"canonical": "http://example.org/Questionnaire/abc|1.0"},
					{"identifier": {"system": "http://example.org/imaging", "value": "study-1"}, "type": "ImagingStudy"},
					{"reference": "Patient/456", "role": "https://example.org/role/sibling"}
				],
				"need_patient_banner": true,
				"smart_style_url": "https://ehr/styles/smart_v1.json",
				"tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"
			}`,
			want: Token{AccessToken: "m7rt6i7s9nuxkjvi8vsx", TokenType: "Bearer", Expiry: t0.Add(time.Hour),
				Scope: "launch/patient patient/Observation.rs patient/Patient.rs", Patient: "123", Encounter: "456",
				Extra: map[string]any{
					"intent": "client-ui-name", "need_patient_banner": true,
					"smart_style_url": "https://ehr/styles/smart_v1.json", "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
					"fhirContext": []any{
						map[string]any{"reference": "Appointment/789"},
						map[string]any{"canonical": "http://example.org/Questionnaire/abc|1.0"},
						map[string]any{"identifier": map[string]any{"system": "http://example.org/imaging", "value": "study-1"}, "type": "ImagingStudy"},
						map[string]any{"reference": "Patient/456", "role": "https://example.org/role/sibling"},
					},
				}},
		},
		{
			name: "SMART authorization_details and id_token",
			body: `{"access_token":"at","token_type":"Bearer","expires_in":300,"scope":"openid fhirUser patient/*.rs",
				"id_token":"eyJ.id.token","authorization_details":[{"type":"smart_on_fhir",
				"locations":["https://ehr.example.org/fhir"],"fhirVersions":["4.0.1"],"scope":"patient/*.rs","patient":"123"}]}`,
			want: Token{AccessToken: "at", TokenType: "Bearer", Expiry: t0.Add(5 * time.Minute), Scope: "openid fhirUser patient/*.rs",
				IDToken: "eyJ.id.token", Extra: map[string]any{"authorization_details": []any{map[string]any{
					"type": "smart_on_fhir", "locations": []any{"https://ehr.example.org/fhir"},
					"fhirVersions": []any{"4.0.1"}, "scope": "patient/*.rs", "patient": "123"}}}},
		},
		{
			name: "SMART refresh section: lowercase bearer, numeric-string expires_in",
			body: `{"access_token":"at2","token_type":"bearer","expires_in":" 3600 ","scope":"patient/Observation.rs","refresh_token":"rt2"}`,
			want: Token{AccessToken: "at2", TokenType: "bearer", RefreshToken: "rt2", Expiry: t0.Add(time.Hour), Scope: "patient/Observation.rs"},
		},
		{
			name: "BEARER, fractional expires_in",
			body: `{"access_token":"at","token_type":"BEARER","expires_in":3599.9}`,
			want: Token{AccessToken: "at", TokenType: "BEARER", Expiry: t0.Add(3599 * time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{"Content-Type": {"application/json;charset=UTF-8"}, "Cache-Control": {"no-store"}}
			got, err := ParseTokenResponse(200, header, []byte(tt.body), t0)
			if err != nil {
				t.Fatal(err)
			}
			if !equalTokens(got, &tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// TestMergeAcrossRefresh: the launch context comes with the first answer;
// a refresh answer may repeat it (it wins) or omit it (it is kept).
func TestMergeAcrossRefresh(t *testing.T) {
	first := `{"access_token":"at1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt1",
		"scope":"launch/patient patient/*.rs offline_access","patient":"123","encounter":"456","tenant":"t1",
		"need_patient_banner":true,"fhirContext":[{"reference":"Patient/123"}],"id_token":"id1"}`
	tests := []struct {
		name    string
		refresh string
		check   func(t *testing.T, got *Token)
	}{
		{
			name:    "context omitted, refresh token not rotated",
			refresh: `{"access_token":"at2","token_type":"bearer","expires_in":"3600","scope":"user/."}`,
			check: func(t *testing.T, got *Token) {
				if got.RefreshToken != "rt1" || got.Patient != "123" || got.Encounter != "456" || got.IDToken != "id1" ||
					got.Extra["tenant"] != "t1" || got.Extra["need_patient_banner"] != true || got.Extra["fhirContext"] == nil {
					t.Errorf("context or refresh token lost: %+v", *got)
				}
				if got.Scope != "user/." || got.AccessToken != "at2" {
					t.Errorf("new fields not taken: %+v", *got)
				}
			},
		},
		{
			name: "context repeated and changed, refresh token rotated",
			refresh: `{"access_token":"at2","token_type":"Bearer","expires_in":3600,"refresh_token":"rt2","patient":"123",
				"fhirContext":[{"reference":"Patient/123"},{"reference":"Encounter/999","role":"launch"}]}`,
			check: func(t *testing.T, got *Token) {
				fc, _ := got.Extra["fhirContext"].([]any)
				if got.RefreshToken != "rt2" || len(fc) != 2 || got.Encounter != "456" || got.Extra["tenant"] != "t1" {
					t.Errorf("merge wrong: %+v", *got)
				}
				if got.Scope != "launch/patient patient/*.rs offline_access" {
					t.Errorf("omitted scope not kept: %q", got.Scope)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, err := ParseTokenResponse(200, jsonHeader(), []byte(first), t0)
			if err != nil {
				t.Fatal(err)
			}
			next, err := ParseTokenResponse(200, jsonHeader(), []byte(tt.refresh), t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := merge(old, next, "")
			if !got.Expiry.Equal(t0.Add(2 * time.Hour)) {
				t.Errorf("expiry %v", got.Expiry)
			}
			tt.check(t, got)
		})
	}
}

func TestParseErrorAnswers(t *testing.T) {
	tests := []struct {
		status int
		body   string
		class  error
		want   TokenError
	}{
		{400, `{"error":"invalid_grant","error_description":"Refresh token expired","error_uri":"https://docs.example/errors#grant"}`,
			ErrReauthRequired, TokenError{StatusCode: 400, Code: "invalid_grant", Description: "Refresh token expired", URI: "https://docs.example/errors#grant"}},
		{401, `{"error":"invalid_client","error_description":"Client authentication failed"}`,
			ErrMisconfigured, TokenError{StatusCode: 401, Code: "invalid_client", Description: "Client authentication failed"}},
		{403, `{"error":"unauthorized_client","error_uri":"https://docs.example/403"}`,
			ErrMisconfigured, TokenError{StatusCode: 403, Code: "unauthorized_client", URI: "https://docs.example/403"}},
		{400, `{"error":"invalid_request","error_description":"line1\nline2\ttab"}`,
			ErrMisconfigured, TokenError{StatusCode: 400, Code: "invalid_request", Description: "line1line2tab"}},
	}
	for _, tt := range tests {
		t.Run(tt.want.Code, func(t *testing.T) {
			_, err := ParseTokenResponse(tt.status, jsonHeader(), []byte(tt.body), t0)
			var te *TokenError
			if !errors.As(err, &te) || *te != tt.want {
				t.Fatalf("got %#v, want %#v", err, tt.want)
			}
			if !errors.Is(err, tt.class) {
				t.Errorf("class of %v", err)
			}
		})
	}
}

func TestScrubAnswer(t *testing.T) {
	const (
		secret    = "cl!ent/secret+="
		rt        = "refresh-TOKEN-0123456789"
		assertion = "eyJhbGciOiJFUzM4NCJ9.eyJqdGkiOiJ4In0.c2ln"
	)
	sent := secrets{secret, basicCredentials("client", secret), assertion, rt}
	tests := []struct {
		name     string
		status   int
		ctype    string
		body     string
		snippet  string // "" for none
		contains string // must appear in the error
	}{
		{"HTML page echoing the refresh token", 502, "text/html", "<html>\n  <h1>Bad Gateway</h1> " + rt + "\n</html>",
			"<html> <h1>Bad Gateway</h1> [REDACTED] </html>", "502"},
		{"form-encoded echo of the secret", 400, "text/plain", "bad client_secret=" + url.QueryEscape(secret),
			"bad client_secret=[REDACTED]", "text/plain"},
		{"JSON-escaped echo, no error field", 401, "application/json", `{"message":"bad ` + strings.ReplaceAll(secret, "/", `\/`) + `"}`,
			`{"message":"bad [REDACTED]"}`, "401"},
		{"Basic header echoed", 400, "text/plain", "Authorization: Basic " + basicCredentials("client", secret),
			"Authorization: Basic [REDACTED]", "400"},
		{"assertion echoed at 200", 200, "text/html", "<p>" + assertion + "</p>", "<p>[REDACTED]</p>", "not a JSON object"},
		{"form answer may hold a fresh token", 200, "application/x-www-form-urlencoded", "access_token=fresh-token-value&token_type=bearer", "", "200"},
		{"body naming a token field", 200, "text/plain", `access_token: fresh-token-value`, "", "200"},
		{"long body is cut", 500, "text/html", strings.Repeat("ab", 500), strings.Repeat("ab", 60) + "…", "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {tt.ctype}}
			_, err := ParseTokenResponse(tt.status, h, []byte(tt.body), t0)
			err = sent.scrubAnswer(err, tt.status, h, []byte(tt.body))
			var got string
			var te *TokenError
			var re *ResponseError
			switch {
			case errors.As(err, &te):
				got = te.Snippet
			case errors.As(err, &re):
				got = re.Snippet
			}
			if got != tt.snippet {
				t.Errorf("snippet %q, want %q", got, tt.snippet)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.contains) {
				t.Errorf("error %q lacks %q", msg, tt.contains)
			}
			for _, s := range []string{secret, url.QueryEscape(secret), rt, assertion, "fresh-token-value"} {
				if strings.Contains(msg, s) {
					t.Errorf("error leaks %q: %s", s, msg)
				}
			}
		})
	}
}

// TestScrubDescriptionBeforeCut: a secret the parser's 256-byte cut splits
// must not survive in part.
func TestScrubDescriptionBeforeCut(t *testing.T) {
	rt := strings.Repeat("R", 40)
	body := `{"error":"invalid_grant","error_description":"` + strings.Repeat("x", 240) + rt + `"}`
	_, err := ParseTokenResponse(400, jsonHeader(), []byte(body), t0)
	err = secrets{rt}.scrubAnswer(err, 400, jsonHeader(), []byte(body))
	if strings.Contains(err.Error(), "RRRR") {
		t.Errorf("part of the secret survived: %v", err)
	}
}

// TestParseRetryAfterClamps: a Retry-After of a day or more, in seconds or
// as an HTTP date, is clamped to maxRetryAfter rather than dropped; what
// cannot be read, or lies in the past, is no hint at all.
func TestParseRetryAfterClamps(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"86399", 86399 * time.Second},
		{"86400", maxRetryAfter},
		{"604800", maxRetryAfter},
		{"99999999999999999999999999", maxRetryAfter},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{t0.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{t0.Add(25 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
		{t0.Add(30 * 24 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
		{t0.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.value, t0); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}
