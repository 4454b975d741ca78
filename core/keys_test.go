package core_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"sync"
	"sync/atomic"
)

// Test keys, generated once per test binary.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// hsmSigner is a crypto.Signer of a type go-jose does not know, as a key in
// an HSM or a KMS is: it only exposes Public and Sign.
type hsmSigner struct {
	inner crypto.Signer
	calls atomic.Int32
}

func (s *hsmSigner) Public() crypto.PublicKey { return s.inner.Public() }

func (s *hsmSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.calls.Add(1)
	return s.inner.Sign(rand, digest, opts)
}
