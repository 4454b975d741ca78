package smarttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// maxBody bounds the request bodies the server reads.
const maxBody = 1 << 20

// tokenAnswer is a successful token endpoint answer.
type tokenAnswer struct {
	AccessToken       string          `json:"access_token"`
	TokenType         string          `json:"token_type"`
	ExpiresIn         int64           `json:"expires_in"`
	Scope             string          `json:"scope"`
	RefreshToken      string          `json:"refresh_token,omitempty"`
	IDToken           string          `json:"id_token,omitempty"`
	Patient           string          `json:"patient,omitempty"`
	Encounter         string          `json:"encounter,omitempty"`
	NeedPatientBanner bool            `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string          `json:"smart_style_url,omitempty"`
	FHIRContext       []fhirReference `json:"fhirContext,omitempty"`

	grant *grant // the grant the answer is for
	nonce string // the nonce of the authorization request, at the code exchange
}

type fhirReference struct {
	Reference string `json:"reference"`
}

// oauthError is an OAuth 2.0 error answer (RFC 6749 section 5.2).
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func invalidRequest(description string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", description}
}

func invalidGrant(description string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", description}
}

// answer returns the token answer for the given tokens of g, with the
// launch context if withContext. sign adds the id_token.
func (s *Server) answer(access, refresh string, g *grant, scope string, withContext bool) tokenAnswer {
	a := tokenAnswer{
		AccessToken:  access,
		TokenType:    s.opts.TokenType,
		ExpiresIn:    int64(s.opts.AccessTokenTTL / time.Second),
		Scope:        scope,
		RefreshToken: refresh,
		grant:        g,
	}
	if withContext {
		patient := s.opts.Patient
		if g.patient != "" {
			patient = g.patient
		}
		a.Patient = patient
		a.Encounter = s.opts.Encounter
		a.NeedPatientBanner = true
		a.SmartStyleURL = s.URL + "/smart-style.json"
		a.FHIRContext = []fhirReference{{Reference: "Patient/" + patient}}
	}
	return a
}

// sign adds a signed id_token to a, issued at now, if its scope has openid:
// at the code exchange and on every refresh, as OpenID Connect servers do.
// It signs outside s.mu.
func (s *Server) sign(a *tokenAnswer, now time.Time) error {
	if !openID(a.Scope) {
		return nil
	}
	t, err := s.idToken(a.Scope, a.grant.authTime, now, a.nonce)
	a.IDToken = t
	return err
}

// token returns a as a core.Token expiring at expiry, with the SMART fields
// in Extra as encoding/json decodes them.
func (a tokenAnswer) token(expiry time.Time) *core.Token {
	t := &core.Token{
		AccessToken:  a.AccessToken,
		TokenType:    a.TokenType,
		RefreshToken: a.RefreshToken,
		IDToken:      a.IDToken,
		Expiry:       expiry,
		Scope:        a.Scope,
		Patient:      a.Patient,
		Encounter:    a.Encounter,
	}
	if a.NeedPatientBanner {
		t.Extra = map[string]any{
			"need_patient_banner": true,
			"smart_style_url":     a.SmartStyleURL,
			"fhirContext": []any{
				map[string]any{"reference": a.FHIRContext[0].Reference},
			},
		}
	}
	return t
}

// serveToken counts a token request, then hands it to the token hook, if
// any, or straight to token.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))

	s.mu.Lock()
	s.tokenCalls++
	if form.Get("grant_type") == "refresh_token" {
		s.refreshCalls++
	}
	h := s.tokenHook
	s.mu.Unlock()

	if err != nil {
		writeError(w, invalidRequest("request body too large or unreadable"))
		return
	}
	if h != nil {
		h(w, r, http.HandlerFunc(s.token))
		return
	}
	s.token(w, r)
}

// token is the token endpoint proper.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if oerr := parseForm(r); oerr != nil {
		s.logf("token: %s: %s", oerr.Code, oerr.Description)
		writeError(w, oerr)
		return
	}
	if noClientCredentials(r) {
		oerr := invalidRequest("client authentication is required: no client credentials were sent")
		s.logf("token: %s: %s", oerr.Code, oerr.Description)
		writeError(w, oerr)
		return
	}
	if why := s.authenticateClient(r); why != "" {
		s.logf("token: invalid_client: %s", why)
		s.clientError(w, r, why)
		return
	}

	now := s.now()
	var (
		a    tokenAnswer
		oerr *oauthError
		note string
	)
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		a, oerr, note = s.exchangeCode(r.PostForm, now)
	case "refresh_token":
		a, oerr, note = s.refreshGrant(r.PostForm, now)
	case "":
		oerr = invalidRequest("grant_type is required")
	default:
		oerr = &oauthError{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + gt + " is not supported"}
	}
	if note != "" {
		s.logf("token: %s", note)
	}
	if oerr != nil {
		s.logf("token: %s: %s", oerr.Code, oerr.Description)
		writeError(w, oerr)
		return
	}
	if err := s.sign(&a, now); err != nil {
		s.logf("token: server_error: %v", err)
		writeError(w, &oauthError{http.StatusInternalServerError, "server_error", "the id_token could not be signed"})
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// exchangeCode serves grant_type=authorization_code.
func (s *Server) exchangeCode(f url.Values, now time.Time) (tokenAnswer, *oauthError, string) {
	code, verifier := f.Get("code"), f.Get("code_verifier")
	if code == "" {
		return tokenAnswer{}, invalidRequest("code is required"), ""
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[code]
	switch {
	case !ok:
		return tokenAnswer{}, invalidGrant("unknown authorization code"), ""
	case c.grant != nil:
		s.revoke(c.grant)
		return tokenAnswer{}, invalidGrant("authorization code already used; the tokens issued from it are revoked"),
			fmt.Sprintf("code %s reused: grant %d revoked", fingerprint(code), c.grant.id)
	case c.burned:
		return tokenAnswer{}, invalidGrant("authorization code already used in a failed PKCE attempt"), ""
	case !now.Before(c.expiry):
		return tokenAnswer{}, invalidGrant("authorization code expired"), ""
	case f.Get("redirect_uri") != c.redirectURI:
		return tokenAnswer{}, invalidGrant("redirect_uri does not match the authorization request"), ""
	case verifier == "" || s256(verifier) != c.challenge:
		// RFC 7636 section 4.6: invalid_grant, a missing verifier included.
		why := "code_verifier does not match code_challenge"
		if verifier == "" {
			why = "code_verifier is required"
		}
		note := ""
		if s.opts.PKCEFailure == PKCEFailureBurnsCode {
			c.burned = true
			why += "; the code can no longer be used"
			note = fmt.Sprintf("code %s burned by a failed PKCE attempt", fingerprint(code))
		}
		return tokenAnswer{}, invalidGrant(why), note
	}

	g := s.newGrant(c.scope, c.authTime)
	g.patient = c.patient
	c.grant = g
	access := s.issueAccess(g, now)
	refresh := ""
	if g.offline {
		refresh = s.issueRefresh(g, now)
	}
	a := s.answer(access, refresh, g, g.scope, true)
	a.nonce = c.nonce
	return a, nil,
		fmt.Sprintf("code %s exchanged: grant %d, access %s, refresh %s",
			fingerprint(code), g.id, fingerprint(access), fingerprint(refresh))
}

// refreshGrant serves grant_type=refresh_token, rotating the refresh token
// and detecting reuse of rotated ones.
func (s *Server) refreshGrant(f url.Values, now time.Time) (tokenAnswer, *oauthError, string) {
	old, scope := f.Get("refresh_token"), f.Get("scope")
	if old == "" {
		return tokenAnswer{}, invalidRequest("refresh_token is required"), ""
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[old]
	grace := ok && t.rotated && s.inGrace(t, now)
	switch {
	case !ok:
		return tokenAnswer{}, invalidGrant("unknown refresh token"), ""
	case t.rotated && !grace:
		s.reuses++
		s.revoke(t.grant)
		return tokenAnswer{}, invalidGrant("refresh token already used; the grant is revoked"),
			fmt.Sprintf("rotated refresh token %s reused: grant %d revoked", fingerprint(old), t.grant.id)
	case t.grant.revoked:
		return tokenAnswer{}, invalidGrant("refresh token revoked"), ""
	case !t.expiry.IsZero() && !now.Before(t.expiry):
		return tokenAnswer{}, invalidGrant("refresh token expired"), ""
	case !subset(scope, t.grant.scope):
		return tokenAnswer{}, &oauthError{http.StatusBadRequest, "invalid_scope", "scope exceeds the scope originally granted"}, ""
	}
	if scope == "" {
		scope = t.grant.scope
	}

	note := "refresh"
	if grace {
		// A resend within the grace window: the token it was rotated for
		// is rotated in turn, and the answer replaces it.
		s.graceReuses++
		t.next.rotated, t.next.rotatedAt = true, now
		note = "grace resend"
	}
	if s.opts.AccessOnRefresh == AccessRevokedOnRefresh {
		s.supersedeAccess(t.grant)
	}
	access := s.issueAccess(t.grant, now)
	refresh := ""
	if !s.opts.NoRotation {
		var next *refreshToken
		refresh, next = s.issueRefreshToken(t.grant, now)
		if !t.rotated {
			t.rotated, t.rotatedAt = true, now
		}
		t.next = next
	}
	return s.answer(access, refresh, t.grant, scope, !s.opts.OmitContextOnRefresh), nil,
		fmt.Sprintf("%s %s of grant %d: access %s, refresh %s",
			note, fingerprint(old), t.grant.id, fingerprint(access), fingerprint(refresh))
}

// inGrace reports whether t, a rotated refresh token, may still be used
// at now under Options.ReuseGraceWindow: within the window since its
// rotation, and only while the token it was rotated for is the grant's
// newest (a grace period applies to the immediately preceding token only).
// s.mu must be held.
func (s *Server) inGrace(t *refreshToken, now time.Time) bool {
	return s.opts.ReuseGraceWindow > 0 && now.Sub(t.rotatedAt) < s.opts.ReuseGraceWindow &&
		t.next != nil && !t.next.rotated && !t.grant.revoked
}

// parseForm checks that r is a form POST with its parameters in the body,
// none repeated, and parses r.PostForm.
func parseForm(r *http.Request) *oauthError {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return invalidRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	if r.URL.RawQuery != "" {
		return invalidRequest("parameters must be sent in the request body, not the URL")
	}
	if err := r.ParseForm(); err != nil {
		return invalidRequest("malformed request body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return invalidRequest("parameter " + k + " is repeated")
		}
	}
	return nil
}

// clientError answers 401 invalid_client, with a Basic challenge when the
// client used or should have used HTTP Basic authentication.
func (s *Server) clientError(w http.ResponseWriter, r *http.Request, why string) {
	if s.opts.AuthMethod == core.ClientSecretBasic || r.Header.Get("Authorization") != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="smarttest"`)
	}
	writeError(w, &oauthError{http.StatusUnauthorized, "invalid_client", why})
}

// writeError writes an OAuth error answer.
func writeError(w http.ResponseWriter, e *oauthError) {
	writeJSON(w, e.status, e)
}

// writeJSON writes v as a JSON answer that must not be cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// s256 returns the S256 code challenge of verifier (RFC 7636 section 4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// single returns the value of parameter k and whether it was sent exactly
// once.
func single(v url.Values, k string) (string, bool) {
	if len(v[k]) != 1 {
		return "", false
	}
	return v[k][0], true
}
