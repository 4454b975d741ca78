package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

var secretToken = Token{
	AccessToken: "AT-secret-123", TokenType: "Bearer", RefreshToken: "RT-secret-456",
	IDToken: "ID-secret-789", Expiry: t0, Scope: "patient/*.read", Patient: "123",
	Extra: map[string]any{"tenant": "t1"},
}

func TestTokenRedactsItself(t *testing.T) {
	tok := secretToken
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "tok", tok, "ptr", &tok)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "tok", tok, "ptr", &tok)
	js, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", tok), "%+v": fmt.Sprintf("%+v", tok), "%#v": fmt.Sprintf("%#v", tok),
		"%s": fmt.Sprintf("%s", tok), "%v ptr": fmt.Sprintf("%v", &tok), "%+v ptr": fmt.Sprintf("%+v", &tok),
		"%#v ptr": fmt.Sprintf("%#v", &tok), "%q": fmt.Sprintf("%q", tok), "%x": fmt.Sprintf("%x", tok),
		"String": tok.String(), "slog": logs.String(), "json": string(js),
		"slice": fmt.Sprint([]*Token{&tok}), "struct": fmt.Sprintf("%+v", struct{ T Token }{tok}),
	}
	for name, out := range outputs {
		for _, secret := range []string{tok.AccessToken, tok.RefreshToken, tok.IDToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%s leaks %q: %s", name, secret, out)
			}
		}
		if !strings.Contains(out, "123") && name != "%x" {
			t.Errorf("%s hides the non-secret patient: %s", name, out)
		}
	}
}

func TestTokenRedactsSecretsInExtra(t *testing.T) {
	tok := Token{AccessToken: "a", Extra: map[string]any{"id_token": map[string]any{"jwt": "ID-SECRET"}, "tenant": "t1"}}
	js, _ := json.Marshal(tok)
	for _, out := range []string{fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok), string(js)} {
		if strings.Contains(out, "ID-SECRET") || !strings.Contains(out, "t1") {
			t.Errorf("Extra not redacted right: %s", out)
		}
	}
	if tok.Extra["id_token"].(map[string]any)["jwt"] != "ID-SECRET" {
		t.Error("redaction modified the token")
	}
}

func TestMerge(t *testing.T) {
	old := &Token{AccessToken: "a1", RefreshToken: "r1", Scope: "s", Patient: "p", Encounter: "e",
		IDToken: "id", Extra: map[string]any{"need_patient_banner": true, "tenant": "old"}}
	tests := []struct {
		name string
		next Token
		want Token
	}{
		{
			name: "rotated, context omitted",
			next: Token{AccessToken: "a2", RefreshToken: "r2"},
			want: Token{AccessToken: "a2", RefreshToken: "r2", Scope: "s", Patient: "p", Encounter: "e", IDToken: "id",
				Extra: map[string]any{"need_patient_banner": true, "tenant": "old"}},
		},
		{
			name: "refresh token omitted keeps the old one",
			next: Token{AccessToken: "a2"},
			want: Token{AccessToken: "a2", RefreshToken: "r1", Scope: "s", Patient: "p", Encounter: "e", IDToken: "id",
				Extra: map[string]any{"need_patient_banner": true, "tenant": "old"}},
		},
		{
			name: "fields present win, but the launch's patient",
			next: Token{AccessToken: "a2", RefreshToken: "r2", Scope: "s2", Patient: "p2",
				Extra: map[string]any{"tenant": "new", "intent": "x"}},
			want: Token{AccessToken: "a2", RefreshToken: "r2", Scope: "s2", Patient: "p", Encounter: "e", IDToken: "id",
				Extra: map[string]any{"need_patient_banner": true, "tenant": "new", "intent": "x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := merge(old, &tt.next, "")
			if !equalTokens(got, &tt.want) {
				t.Errorf("got  %+v\nwant %+v", got.redacted(), tt.want.redacted())
			}
		})
	}
	if old.Extra["tenant"] != "old" {
		t.Error("merge modified the old token")
	}
}

func TestOAuth2RoundTrip(t *testing.T) {
	tok := secretToken
	tok.Encounter = "e1"
	tok.Extra = map[string]any{"fhirContext": []any{map[string]any{"reference": "Patient/123"}}, "need_patient_banner": true}
	o := tok.OAuth2()
	if o.AccessToken != tok.AccessToken || o.RefreshToken != tok.RefreshToken || !o.Expiry.Equal(tok.Expiry) {
		t.Fatalf("OAuth2() lost fields: %+v", o)
	}
	if o.Extra("patient") != "123" {
		t.Errorf("Extra(patient) = %v", o.Extra("patient"))
	}
	back := TokenFromOAuth2(o)
	if !equalTokens(back, &tok) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back.redacted(), tok.redacted())
	}
	if TokenFromOAuth2(nil) != nil {
		t.Error("TokenFromOAuth2(nil) != nil")
	}
}

func TestValid(t *testing.T) {
	now := t0
	tests := []struct {
		tok  *Token
		want bool
	}{
		{nil, false},
		{&Token{}, false},
		{&Token{AccessToken: "a"}, true},
		{&Token{AccessToken: "a", Expiry: now.Add(time.Second)}, true},
		{&Token{AccessToken: "a", Expiry: now}, false},
	}
	for i, tt := range tests {
		if got := tt.tok.Valid(now); got != tt.want {
			t.Errorf("%d: Valid = %v, want %v", i, got, tt.want)
		}
	}
}

// TestTokenFromOAuth2Answer: an oauth2.Token decoded from a token answer
// with encoding/json has ExpiresIn and a zero Expiry; its expiry must come
// from ExpiresIn. Extra values outside the SMART list are kept too.
func TestTokenFromOAuth2Answer(t *testing.T) {
	var o oauth2.Token
	if err := json.Unmarshal([]byte(`{"access_token":"a","token_type":"Bearer","refresh_token":"r","expires_in":3600}`), &o); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	tok := TokenFromOAuth2(&o)
	if tok.Expiry.Before(before.Add(3599*time.Second)) || tok.Expiry.After(time.Now().Add(3600*time.Second)) {
		t.Errorf("Expiry = %v, want about an hour from now (expires_in 3600)", tok.Expiry)
	}
	if tok := TokenFromOAuth2(&oauth2.Token{AccessToken: "a"}); !tok.Expiry.IsZero() {
		t.Errorf("Expiry = %v for a token without expiry", tok.Expiry)
	}

	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	raw := map[string]any{
		"access_token": "a", "refresh_token": "r", "id_token": "i", "expires_in": 3600.0, "token_type": "Bearer",
		"scope": "patient/*.read", "patient": "123", "encounter": "e1",
		"tenant": "t1", "organization": "org-7", "custom": map[string]any{"k": "v"},
	}
	tok = TokenFromOAuth2((&oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: exp, ExpiresIn: 60}).WithExtra(raw))
	if !tok.Expiry.Equal(exp) {
		t.Errorf("Expiry = %v, want the token's own %v", tok.Expiry, exp)
	}
	want := map[string]any{"tenant": "t1", "organization": "org-7", "custom": map[string]any{"k": "v"}}
	if fmt.Sprint(tok.Extra) != fmt.Sprint(want) {
		t.Errorf("Extra = %v, want %v (the fields without a Token field of their own)", tok.Extra, want)
	}
	if tok.Scope != "patient/*.read" || tok.Patient != "123" || tok.Encounter != "e1" || tok.IDToken != "i" {
		t.Errorf("SMART fields lost: %+v", tok)
	}
	form := url.Values{"access_token": {"a"}, "scope": {"s"}, "organization": {"org-7"}}
	if tok := TokenFromOAuth2((&oauth2.Token{AccessToken: "a"}).WithExtra(form)); tok.Extra["organization"] != "org-7" || tok.Scope != "s" || len(tok.Extra) != 1 {
		t.Errorf("form-encoded answer: %+v", tok)
	}
}
