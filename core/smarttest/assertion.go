package smarttest

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/smartrefresh/smartrefresh/core"
)

// maxAssertionLifetime is how far ahead a client assertion may expire
// (SMART App Launch: "no more than five minutes in the future").
const maxAssertionLifetime = 5 * time.Minute

// checkAssertion checks the private_key_jwt client assertion in form
// strictly, as SMART's confidential asymmetric profile describes, and
// records its jti so that it cannot be replayed. It returns why it failed,
// or "" on success.
func (s *Server) checkAssertion(form url.Values) string {
	if typ, ok := single(form, "client_assertion_type"); !ok || typ != core.ClientAssertionType {
		return "private_key_jwt: client_assertion_type must be " + core.ClientAssertionType
	}
	assertion, ok := single(form, "client_assertion")
	if !ok || assertion == "" {
		return "private_key_jwt: client_assertion is required"
	}
	jws, err := jose.ParseSignedCompact(assertion, []jose.SignatureAlgorithm{jose.RS384, jose.ES384})
	if err != nil || len(jws.Signatures) != 1 {
		return "private_key_jwt: client_assertion is not a compact JWS signed with RS384 or ES384"
	}
	h := jws.Signatures[0].Protected
	switch key := s.opts.ClientPublicKey.(type) {
	case *rsa.PublicKey:
		if h.Algorithm != string(jose.RS384) {
			return "private_key_jwt: the client's RSA key needs alg RS384, not " + h.Algorithm
		}
	case *ecdsa.PublicKey:
		if h.Algorithm != string(jose.ES384) {
			return "private_key_jwt: the client's ECDSA key needs alg ES384, not " + h.Algorithm
		}
	default:
		return fmt.Sprintf("private_key_jwt: unusable client key %T", key)
	}
	if h.KeyID != s.opts.ClientKeyID {
		return fmt.Sprintf("private_key_jwt: kid %q is not the client's key", h.KeyID)
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "JWT" {
		return "private_key_jwt: the typ header must be JWT"
	}
	payload, err := jws.Verify(s.opts.ClientPublicKey)
	if err != nil {
		return "private_key_jwt: the signature does not verify with the client's key"
	}
	var c struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp *float64        `json:"exp"`
		Jti string          `json:"jti"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "private_key_jwt: the claims are not a JSON object of the expected types"
	}
	now := s.now()
	switch {
	case c.Iss != s.opts.ClientID || c.Sub != s.opts.ClientID:
		return "private_key_jwt: iss and sub must both be the client_id"
	case !audience(c.Aud, s.TokenURL):
		return "private_key_jwt: aud must be the token URL " + s.TokenURL
	case c.Exp == nil:
		return "private_key_jwt: exp is required"
	case !now.Before(unixTime(*c.Exp)):
		return "private_key_jwt: the assertion has expired"
	case unixTime(*c.Exp).Sub(now) > maxAssertionLifetime:
		return "private_key_jwt: exp is more than five minutes ahead"
	case c.Jti == "":
		return "private_key_jwt: jti is required"
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for jti, exp := range s.assertionIDs {
		if now.After(exp) {
			delete(s.assertionIDs, jti) // expired: can no longer be replayed
		}
	}
	if _, seen := s.assertionIDs[c.Jti]; seen {
		return "private_key_jwt: jti already used (a replayed assertion)"
	}
	s.assertionIDs[c.Jti] = unixTime(*c.Exp)
	return ""
}

// audience reports whether the aud claim raw, a string or an array of
// strings, names want.
func audience(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && slices.Contains(many, want)
}

// unixTime converts a JWT NumericDate.
func unixTime(secs float64) time.Time {
	return time.Unix(0, int64(secs*float64(time.Second)))
}
