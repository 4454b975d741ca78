package smarttest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// serveAuthorize is the authorization endpoint. It approves every valid
// request at once, redirecting to redirect_uri with a code and the state.
// Errors go back to the redirect_uri as RFC 6749 section 4.1.2.1 says once
// it is known to be registered; when the client is unknown or the
// redirect_uri is missing or not registered they are answered with a 400
// error page and no redirect. As SMART App Launch requires, and real SMART
// servers check, aud must be the FHIR base (FHIRBaseURL).
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id, ok := single(q, "client_id"); !ok || id != s.opts.ClientID {
		http.Error(w, "smarttest: missing, repeated or unknown client_id", http.StatusBadRequest)
		return
	}
	redirectURI, ok := single(q, "redirect_uri")
	switch {
	case !ok:
		http.Error(w, "smarttest: exactly one redirect_uri is required", http.StatusBadRequest)
		return
	case len(s.opts.RedirectURIs) == 0:
		s.logf("authorize: refused: the client has no registered redirect URI (Options.RedirectURIs)")
		http.Error(w, "smarttest: the client has no registered redirect URI: set Options.RedirectURIs", http.StatusBadRequest)
		return
	case !slices.Contains(s.opts.RedirectURIs, redirectURI):
		s.logf("authorize: refused: redirect_uri is not registered")
		http.Error(w, "smarttest: redirect_uri is not registered for this client (exact match required)", http.StatusBadRequest)
		return
	}

	state := q.Get("state")
	fail := func(code, description string) {
		v := url.Values{"error": {code}, "error_description": {description}}
		if state != "" {
			v.Set("state", state)
		}
		s.logf("authorize: %s: %s", code, description)
		redirect(w, r, redirectURI, v)
	}
	for k, v := range q {
		if len(v) > 1 {
			fail("invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
	case state == "":
		fail("invalid_request", "state is required")
	case q.Get("code_challenge_method") == "plain":
		fail("invalid_request", "code_challenge_method plain is not supported, use S256")
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "code_challenge_method S256 is required")
	case !pkceValue(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge is missing or malformed")
	case q.Get("aud") != s.FHIRBaseURL:
		// SMART App Launch requires aud, the FHIR base, as real servers do.
		fail("invalid_request", "aud is required and must be "+s.FHIRBaseURL)
	default:
		scope := q.Get("scope")
		if scope == "" {
			scope = s.opts.Scope
		}
		code := newToken()
		now := s.now()
		s.mu.Lock()
		s.codes[code] = &authCode{
			redirectURI: redirectURI,
			challenge:   q.Get("code_challenge"),
			scope:       scope,
			patient:     s.opts.LaunchPatients[q.Get("launch")],
			nonce:       q.Get("nonce"),
			authTime:    now,
			expiry:      now.Add(codeTTL),
		}
		s.mu.Unlock()
		s.logf("authorize: issued code %s for scope %q", fingerprint(code), scope)
		redirect(w, r, redirectURI, url.Values{"code": {code}, "state": {state}})
	}
}

// redirect answers 302 to target with params added to its query.
func redirect(w http.ResponseWriter, r *http.Request, target string, params url.Values) {
	u, _ := url.Parse(target) // checked by absoluteURL
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// absoluteURL reports whether s is an absolute http or https URL without a
// fragment, as a redirection URI must be (RFC 6749 section 3.1.2).
func absoluteURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") &&
		u.Host != "" && u.User == nil && !strings.Contains(s, "#")
}

// pkceValue reports whether s is a well-formed PKCE code verifier or
// challenge: 43 to 128 unreserved characters (RFC 7636 section 4.1).
func pkceValue(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}
