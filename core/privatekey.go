package core

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// ParsePrivateKeyPEM returns the first private key in the PEM data, for
// Config.PrivateKey. It reads unencrypted PKCS #8 ("PRIVATE KEY"), PKCS #1
// ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY") blocks, skipping others
// such as "EC PARAMETERS", and accepts RSA and ECDSA keys. Errors match
// ErrMisconfigured and never contain key material.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, keyError("no PEM private key block found")
		}
		if block.Headers["Proc-Type"] != "" || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, keyError("encrypted private keys are not supported; decrypt the key first")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, keyError("malformed " + block.Type + " block")
		}
		switch key := key.(type) {
		case *rsa.PrivateKey:
			return key, nil
		case *ecdsa.PrivateKey:
			return key, nil
		}
		return nil, keyError(fmt.Sprintf("unsupported key type %T (want RSA or ECDSA)", key))
	}
}

func keyError(reason string) error {
	return fmt.Errorf("%w: private key: %s", ErrMisconfigured, reason)
}
