package smarttest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"

	"github.com/smartrefresh/smartrefresh/core"
)

// authenticateClient checks that r authenticates the client with exactly the
// configured method and no other, as RFC 6749 section 2.3 requires. It
// returns why it failed, or "" on success. r.PostForm must be parsed.
func (s *Server) authenticateClient(r *http.Request) string {
	id, secret := s.opts.ClientID, s.opts.ClientSecret
	_, hasHeader := r.Header["Authorization"]
	formID, hasFormID := single(r.PostForm, "client_id")
	formSecret, hasFormSecret := single(r.PostForm, "client_secret")

	switch s.opts.AuthMethod {
	case core.ClientSecretBasic:
		user, pass, ok := r.BasicAuth()
		if !ok {
			return "client_secret_basic: missing or malformed Basic Authorization header"
		}
		// RFC 6749 section 2.3.1: the id and secret are form-encoded
		// before they are joined.
		user, err1 := url.QueryUnescape(user)
		pass, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return "client_secret_basic: bad encoding in Basic Authorization header"
		}
		if hasFormSecret {
			return "client_secret_basic: client_secret must not be sent in the body"
		}
		if hasFormID && formID != user {
			return "client_secret_basic: client_id in the body differs from the Authorization header"
		}
		if !equal(user, id) || !equal(pass, secret) {
			return "client_secret_basic: unknown client or wrong secret"
		}
	case core.ClientSecretPost:
		if hasHeader {
			return "client_secret_post: the Authorization header must not be sent"
		}
		if !hasFormID || !hasFormSecret {
			return "client_secret_post: client_id and client_secret are required in the body"
		}
		if !equal(formID, id) || !equal(formSecret, secret) {
			return "client_secret_post: unknown client or wrong secret"
		}
	case core.None:
		if hasHeader {
			return "none: the Authorization header must not be sent by a public client"
		}
		if hasFormSecret {
			return "none: client_secret must not be sent by a public client"
		}
		if !hasFormID {
			return "none: client_id is required in the body"
		}
		if formID != id {
			return "none: unknown client"
		}
	case core.PrivateKeyJWT:
		if hasHeader {
			return "private_key_jwt: the Authorization header must not be sent"
		}
		if hasFormSecret {
			return "private_key_jwt: client_secret must not be sent"
		}
		if hasFormID && formID != id {
			return "private_key_jwt: unknown client"
		}
		return s.checkAssertion(r.PostForm)
	default:
		return fmt.Sprintf("unsupported method %q", s.opts.AuthMethod)
	}
	return ""
}

// noClientCredentials reports whether r carries no client credentials at
// all: no Authorization header, client_id, client_secret or client
// assertion. Real servers answer such a request 400 invalid_request, not
// 401 invalid_client (RFC 6749 section 5.2: a missing parameter), at the
// token and revocation endpoints alike. r.PostForm must be parsed.
func noClientCredentials(r *http.Request) bool {
	if _, ok := r.Header["Authorization"]; ok {
		return false
	}
	for _, k := range []string{"client_id", "client_secret", "client_assertion", "client_assertion_type"} {
		if _, ok := r.PostForm[k]; ok {
			return false
		}
	}
	return true
}

// equal compares secrets in constant time.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
