package core

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// authRequest returns a form POST of form to endpoint that authenticates
// the client with the configured method, and only that method, together
// with the secrets it carries. For PrivateKeyJWT it signs a fresh client
// assertion; if that fails, nothing is sent.
func (r *Refresher) authRequest(ctx context.Context, endpoint string, form url.Values) (*http.Request, secrets, error) {
	var sent secrets
	form.Set("client_id", r.cfg.ClientID)
	switch r.cfg.AuthMethod {
	case ClientSecretPost:
		form.Set("client_secret", r.cfg.ClientSecret)
		sent = append(sent, r.cfg.ClientSecret)
	case ClientSecretBasic:
		sent = append(sent, r.cfg.ClientSecret, basicCredentials(r.cfg.ClientID, r.cfg.ClientSecret))
	case PrivateKeyJWT:
		assertion, err := r.clientAssertion()
		if err != nil {
			return nil, nil, err
		}
		form.Set("client_assertion_type", ClientAssertionType)
		form.Set("client_assertion", assertion)
		sent = append(sent, assertion)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: endpoint URL: %v", ErrMisconfigured, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if r.cfg.AuthMethod == ClientSecretBasic {
		// RFC 6749 section 2.3.1: both parts are form-encoded first.
		req.SetBasicAuth(url.QueryEscape(r.cfg.ClientID), url.QueryEscape(r.cfg.ClientSecret))
	}
	return req, sent, nil
}

// basicCredentials is the base64 text of the Authorization header that
// client_secret_basic sends, in case a server echoes the header.
func basicCredentials(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}

// secrets are the secrets one request sent (client secret, refresh token,
// client assertion, revoked token), to be scrubbed from whatever the server
// answered before it goes into an error.
type secrets []string

// scrub replaces every secret in text, as sent or as a server would echo it
// (form-encoded or JSON-escaped), with [REDACTED], and drops control
// characters.
func (s secrets) scrub(text string) string {
	// Control characters never reach an error (limit drops them): drop
	// them first, so that none splits a secret that would then re-form.
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, text)
	var forms []string
	for _, secret := range s {
		if secret == "" {
			continue
		}
		forms = append(forms, secret, url.QueryEscape(secret), url.PathEscape(secret))
		forms = append(forms, jsonForms(secret)...)
	}
	// Longest first, so that no part of a longer form survives.
	slices.SortFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, f := range slices.Compact(forms) {
		text = strings.ReplaceAll(text, f, redacted)
	}
	return text
}

// jsonForms returns s as JSON encoders write it inside a string: with and
// without HTML escaping, with and without "/" escaped as "\/".
func jsonForms(s string) []string {
	var forms []string
	for _, html := range []bool{true, false} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		enc.Encode(s)
		js := strings.TrimSuffix(b.String(), "\n")
		js = js[1 : len(js)-1]
		forms = append(forms, js, strings.ReplaceAll(js, "/", `\/`))
	}
	return forms
}

// scrubErr returns err, or an error with the same text minus the secrets
// when its text contains one.
func (s secrets) scrubErr(err error) error {
	if msg := err.Error(); s.scrub(msg) != msg {
		return errorString(s.scrub(msg))
	}
	return err
}

// snippetBytes bounds Snippet.
const snippetBytes = 120
