package core

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// assertionLifetime is how far ahead a client assertion expires. SMART
// allows at most five minutes; one minute less leaves room for a server
// clock that runs behind.
const assertionLifetime = 4 * time.Minute

// minRSABits is the shortest RSA key accepted for client assertions.
const minRSABits = 2048

// assertionClaims are the claims of a SMART client assertion.
type assertionClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Iat int64  `json:"iat"`
	Jti string `json:"jti"`
}

// clientAssertion returns a fresh client assertion for private_key_jwt:
// iss and sub are the client id, aud the token URL, exp assertionLifetime
// ahead and jti random, so no two assertions are alike.
func (r *Refresher) clientAssertion() (string, error) {
	now := r.cfg.Now()
	payload, err := json.Marshal(assertionClaims{
		Iss: r.cfg.ClientID,
		Sub: r.cfg.ClientID,
		Aud: r.cfg.TokenURL,
		Exp: now.Add(assertionLifetime).Unix(),
		Iat: now.Unix(),
		Jti: rand.Text(),
	})
	if err != nil {
		return "", &AssertionError{Err: err}
	}
	jws, err := r.signer.Sign(payload)
	if err != nil {
		return "", &AssertionError{Err: err}
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		return "", &AssertionError{Err: err}
	}
	return s, nil
}

// newAssertionSigner returns the JWS signer of client assertions: key
// wrapped as a go-jose OpaqueSigner, with the kid and typ headers set.
func newAssertionSigner(key crypto.Signer, keyID, alg string) (jose.Signer, error) {
	opaque := &opaqueSigner{
		key: key,
		alg: jose.SignatureAlgorithm(alg),
		pub: &jose.JSONWebKey{Key: key.Public(), KeyID: keyID, Algorithm: alg, Use: "sig"},
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	return jose.NewSigner(jose.SigningKey{Algorithm: opaque.alg, Key: opaque}, opts)
}

// opaqueSigner is a go-jose OpaqueSigner over any crypto.Signer, so that
// keys held in an HSM or a KMS sign assertions as in-memory keys do.
type opaqueSigner struct {
	key crypto.Signer
	alg jose.SignatureAlgorithm
	pub *jose.JSONWebKey
}

func (s *opaqueSigner) Public() *jose.JSONWebKey { return s.pub }

func (s *opaqueSigner) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{s.alg} }

// SignPayload hashes payload with SHA-384 and signs the digest with the
// crypto.Signer. ECDSA signers answer ASN.1 DER; JWS wants r||s.
func (s *opaqueSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != s.alg {
		return nil, jose.ErrUnsupportedAlgorithm
	}
	digest := sha512.Sum384(payload)
	sig, err := s.key.Sign(rand.Reader, digest[:], crypto.SHA384)
	if err != nil {
		return nil, err
	}
	if alg == jose.ES384 {
		return ecdsaFixed(sig, 48)
	}
	return sig, nil
}

// ecdsaFixed converts an ASN.1 DER ECDSA signature into the fixed-size
// r||s form of RFC 7518 section 3.4, each half size bytes long.
func ecdsaFixed(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil ||
		sig.R.Sign() <= 0 || sig.S.Sign() <= 0 ||
		sig.R.BitLen() > size*8 || sig.S.BitLen() > size*8 {
		return nil, errors.New("signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}

// signingAlg returns the assertion algorithm for key: RS384 for RSA keys
// (2048 bits or more), ES384 for ECDSA P-384 keys. want, when set, must
// agree. The error is a *ConfigError.
func signingAlg(key crypto.Signer, want string) (string, error) {
	var alg string
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if pub == nil || pub.N == nil {
			return "", &ConfigError{Field: "PrivateKey", Reason: "has no public key"}
		}
		if pub.N.BitLen() < minRSABits {
			return "", &ConfigError{Field: "PrivateKey", Reason: fmt.Sprintf("is a %d-bit RSA key; at least %d bits are required", pub.N.BitLen(), minRSABits)}
		}
		alg = RS384
	case *ecdsa.PublicKey:
		if pub == nil || pub.Curve != elliptic.P384() {
			name := "unknown"
			if pub != nil && pub.Curve != nil {
				name = pub.Curve.Params().Name
			}
			return "", &ConfigError{Field: "PrivateKey", Reason: "is an ECDSA key on curve " + name + "; ES384 needs P-384"}
		}
		alg = ES384
	default:
		return "", &ConfigError{Field: "PrivateKey", Reason: fmt.Sprintf("has an unsupported public key type %T (want RSA or ECDSA P-384)", pub)}
	}
	switch want {
	case "", alg:
		return alg, nil
	case RS384, ES384:
		return "", &ConfigError{Field: "SigningAlg", Reason: want + " does not match the PrivateKey, which needs " + alg}
	}
	return "", &ConfigError{Field: "SigningAlg", Reason: "must be RS384 or ES384, not " + fmt.Sprintf("%q", want)}
}
