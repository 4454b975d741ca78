package core

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Token is a SMART on FHIR token: the access token, the refresh token that
// renews it, and the launch context the authorization server sent with them.
//
// A Token redacts its secrets (AccessToken, RefreshToken, IDToken) when it is
// printed with the fmt verbs, logged with log/slog or encoded with
// encoding/json, so it can be logged safely. Read the fields directly to use
// them. Tokens handed out by a Refresher are shared between goroutines and
// must not be modified.
type Token struct {
	AccessToken string
	// TokenType is the token_type as the server (or the app) gave it,
	// spelling included; Type gives the scheme Client sends.
	TokenType    string
	RefreshToken string
	// Expiry is when the access token expires. The zero value means the
	// server did not say; such a token is only refreshed after a 401.
	Expiry    time.Time
	Scope     string
	IDToken   string
	Patient   string
	Encounter string
	// Extra holds every other field of the token response, such as the SMART
	// launch context fields fhirContext, need_patient_banner,
	// smart_style_url, tenant, intent and authorization_details, as decoded
	// by encoding/json.
	Extra map[string]any
}

// Valid reports whether t has an access token that has not expired at now.
func (t *Token) Valid(now time.Time) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || now.Before(t.Expiry))
}

// Type returns the authorization scheme the token is sent with: the
// canonical "Bearer" for a bearer token in any spelling ("bearer",
// "BEARER", as some servers and golang.org/x/oauth2 hand it over) and when
// the server sent no token_type, since many resource servers compare the
// scheme case-sensitively. TokenType keeps the server's raw value.
func (t *Token) Type() string {
	if tt := strings.TrimSpace(t.TokenType); tt == "" || strings.EqualFold(tt, "bearer") {
		return "Bearer"
	}
	return t.TokenType
}

// merge returns the token that replaces old after a refresh that asked
// for scope (empty: the grant's) and was answered with next: fields present
// in next win, and what next left out (the refresh token, the launch
// context) is kept from old. A scope left out is the one asked for (RFC 6749
// section 5.1), or old's when none was.
//
// The launch context is fixed at launch (SMART App Launch): a patient or
// encounter in next other than old's is not adopted; mismatch names each
// such field, for the refresher to log and report.
func merge(old, next *Token, scope string) (t *Token, mismatch []string) {
	m := *next
	t = &m
	if t.RefreshToken == "" {
		t.RefreshToken = old.RefreshToken
	}
	if t.Scope == "" {
		t.Scope = scope
	}
	if t.Scope == "" {
		t.Scope = old.Scope
	}
	if t.IDToken == "" {
		t.IDToken = old.IDToken
	}
	if old.Encounter != "" && t.Encounter != "" && t.Encounter != old.Encounter {
		mismatch = append(mismatch, "encounter")
		t.Encounter = old.Encounter
	}
	if old.Patient != "" && t.Patient != "" && t.Patient != old.Patient {
		mismatch = append(mismatch, "patient")
		t.Patient = old.Patient
	}
	if t.Patient == "" {
		t.Patient = old.Patient
	}
	if t.Encounter == "" {
		t.Encounter = old.Encounter
	}
	if len(old.Extra) > 0 {
		extra := maps.Clone(old.Extra)
		maps.Copy(extra, next.Extra)
		t.Extra = extra
	}
	return t, mismatch
}

// launchContextExtra are the members of the SMART launch context that a
// token answer carries besides patient and encounter (kept in Extra).
var launchContextExtra = []string{"fhirContext", "need_patient_banner", "intent", "smart_style_url", "tenant"}

// withLaunchContext returns next with the launch context own has (its
// patient, encounter and launchContextExtra members, those it has), or
// next itself when next has them already: as in merge, a launch's context
// wins, and what it lacks may come from next. The launch context belongs
// to a launch, not to the token values: a server that handed two launches
// one grant's tokens (see inLaunch) gives both the same values, but each
// its own patient.
func withLaunchContext(next, own *Token) *Token {
	patient := own.Patient != "" && next.Patient != own.Patient
	encounter := own.Encounter != "" && next.Encounter != own.Encounter
	var extra []string
	for _, k := range launchContextExtra {
		if v, ok := own.Extra[k]; ok && !reflect.DeepEqual(next.Extra[k], v) {
			extra = append(extra, k)
		}
	}
	if !patient && !encounter && len(extra) == 0 {
		return next
	}
	t := *next
	if patient {
		t.Patient = own.Patient
	}
	if encounter {
		t.Encounter = own.Encounter
	}
	if len(extra) > 0 {
		t.Extra = maps.Clone(next.Extra)
		if t.Extra == nil {
			t.Extra = map[string]any{}
		}
		for _, k := range extra {
			t.Extra[k] = own.Extra[k]
		}
	}
	return &t
}

const redacted = "[REDACTED]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// redactedToken is what fmt, slog and encoding/json see of a Token.
type redactedToken struct {
	AccessToken  string         `json:"access_token,omitempty"`
	TokenType    string         `json:"token_type,omitempty"`
	RefreshToken string         `json:"refresh_token,omitempty"`
	Expiry       time.Time      `json:"expiry,omitzero"`
	Scope        string         `json:"scope,omitempty"`
	IDToken      string         `json:"id_token,omitempty"`
	Patient      string         `json:"patient,omitempty"`
	Encounter    string         `json:"encounter,omitempty"`
	Extra        map[string]any `json:"extra,omitempty"`
}

func (t Token) redacted() redactedToken {
	return redactedToken{
		AccessToken:  redact(t.AccessToken),
		TokenType:    t.TokenType,
		RefreshToken: redact(t.RefreshToken),
		Expiry:       t.Expiry,
		Scope:        t.Scope,
		IDToken:      redact(t.IDToken),
		Patient:      t.Patient,
		Encounter:    t.Encounter,
		Extra:        redactExtra(t.Extra),
	}
}

// secretFields are names that never show in a redacted Extra, whatever
// their type: a server that sent, say, a non-string id_token leaves it in
// Extra.
var secretFields = []string{"access_token", "refresh_token", "id_token", "client_secret", "assertion", "client_assertion"}

func redactExtra(extra map[string]any) map[string]any {
	for _, k := range secretFields {
		if _, ok := extra[k]; ok {
			out := maps.Clone(extra)
			for _, k := range secretFields {
				if _, ok := out[k]; ok {
					out[k] = redacted
				}
			}
			return out
		}
	}
	return extra
}

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, …)
// prints the token with its secrets redacted.
func (t Token) Format(f fmt.State, verb rune) {
	r := t.redacted()
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, "core.Token%+v", r)
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%+v", r)
	default:
		fmt.Fprintf(f, "{%s %s %s exp=%s scope=%q patient=%q}",
			redact(t.AccessToken), t.TokenType, redact(t.RefreshToken),
			t.Expiry.Format(time.RFC3339), t.Scope, t.Patient)
	}
}

// String returns the token with its secrets redacted.
func (t Token) String() string { return fmt.Sprint(t) }

// LogValue implements slog.LogValuer: logs show the token's expiry, scope and
// patient, never its secrets.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("access_token", t.AccessToken != ""),
		slog.Bool("refresh_token", t.RefreshToken != ""),
		slog.Time("expiry", t.Expiry),
		slog.String("scope", t.Scope),
		slog.String("patient", t.Patient),
	)
}

// MarshalJSON encodes the token with its secrets replaced by "[REDACTED]",
// so that a Token that ends up in a JSON log or API answer leaks nothing.
func (t Token) MarshalJSON() ([]byte, error) {
	return jsonMarshal(t.redacted())
}

// ownFields are the token-response fields that have a field of their own
// in Token (or are the expiry); TokenFromOAuth2 puts every other field of
// the answer into Extra.
var ownFields = map[string]bool{
	"access_token": true, "token_type": true, "refresh_token": true, "expires_in": true,
	"scope": true, "id_token": true, "patient": true, "encounter": true,
}

// OAuth2 converts t to an *oauth2.Token, for code written against
// golang.org/x/oauth2. The SMART fields are available through its Extra
// method.
func (t *Token) OAuth2() *oauth2.Token {
	raw := map[string]any{}
	maps.Copy(raw, t.Extra)
	for k, v := range map[string]string{
		"scope": t.Scope, "id_token": t.IDToken,
		"patient": t.Patient, "encounter": t.Encounter,
	} {
		if v != "" {
			raw[k] = v
		}
	}
	o := &oauth2.Token{
		AccessToken:  t.AccessToken,
		TokenType:    t.TokenType,
		RefreshToken: t.RefreshToken,
		Expiry:       t.Expiry,
	}
	return o.WithExtra(raw)
}

// TokenFromOAuth2 converts a token obtained with golang.org/x/oauth2 (for
// example from oauth2.Config.Exchange) into a Token. The SMART fields scope,
// id_token, patient and encounter are read from the token's Extra values,
// and every other field of the token answer (the launch context fields
// listed on Token, and any other) goes into Token.Extra.
//
// When o.Expiry is zero but o.ExpiresIn is set (an oauth2.Token decoded
// from a token answer with encoding/json), the expiry is ExpiresIn seconds
// from now.
func TokenFromOAuth2(o *oauth2.Token) *Token {
	if o == nil {
		return nil
	}
	str := func(k string) string { s, _ := o.Extra(k).(string); return s }
	t := &Token{
		AccessToken:  o.AccessToken,
		TokenType:    o.TokenType,
		RefreshToken: o.RefreshToken,
		Expiry:       o.Expiry,
		Scope:        str("scope"),
		IDToken:      str("id_token"),
		Patient:      str("patient"),
		Encounter:    str("encounter"),
	}
	if t.Expiry.IsZero() && o.ExpiresIn > 0 && o.ExpiresIn <= maxExpiresIn { // as for a refresh answer (endpoint.go)
		t.Expiry = time.Now().Add(time.Duration(o.ExpiresIn) * time.Second)
	}
	for _, k := range extraKeys(o) {
		if ownFields[k] {
			continue
		}
		if v := o.Extra(k); v != nil {
			if t.Extra == nil {
				t.Extra = map[string]any{}
			}
			t.Extra[k] = v
		}
	}
	return t
}

// extraKeys returns the names of the fields of the token answer that o
// carries (set with oauth2.Token.WithExtra: a map[string]any for a JSON
// answer, url.Values for a form-encoded one). oauth2.Token offers no way
// to list them but its unexported raw field, which is read here, never
// written; its values are read with o.Extra.
func extraKeys(o *oauth2.Token) []string {
	raw := reflect.ValueOf(o).Elem().FieldByName("raw")
	if raw.Kind() == reflect.Interface {
		raw = raw.Elem()
	}
	if raw.Kind() != reflect.Map || raw.Type().Key().Kind() != reflect.String {
		return nil
	}
	keys := make([]string, 0, raw.Len())
	for _, k := range raw.MapKeys() {
		keys = append(keys, k.String())
	}
	slices.Sort(keys)
	return keys
}
