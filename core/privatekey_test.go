package core

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/alexedwards/scs/v2"
)

var (
	testRSA = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	testEC = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func pemBlock(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func TestParsePrivateKeyPEM(t *testing.T) {
	pkcs8RSA, _ := x509.MarshalPKCS8PrivateKey(testRSA())
	pkcs8EC, _ := x509.MarshalPKCS8PrivateKey(testEC())
	sec1, _ := x509.MarshalECPrivateKey(testEC())
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8Ed, _ := x509.MarshalPKCS8PrivateKey(edKey)
	ecParams := "-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n"
	tests := []struct {
		name string
		pem  string
		want crypto.PublicKey // nil for an error
	}{
		{"PKCS #8 RSA", pemBlock("PRIVATE KEY", pkcs8RSA), testRSA().Public()},
		{"PKCS #8 ECDSA", pemBlock("PRIVATE KEY", pkcs8EC), testEC().Public()},
		{"PKCS #1 RSA", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSA())), testRSA().Public()},
		{"SEC 1 after EC PARAMETERS, as openssl ecparam writes it", ecParams + pemBlock("EC PRIVATE KEY", sec1), testEC().Public()},
		{"key after a certificate", pemBlock("CERTIFICATE", []byte{1, 2}) + pemBlock("PRIVATE KEY", pkcs8EC), testEC().Public()},
		{"Ed25519", pemBlock("PRIVATE KEY", pkcs8Ed), nil},
		{"encrypted PKCS #8", pemBlock("ENCRYPTED PRIVATE KEY", pkcs8RSA), nil},
		{"legacy encrypted PEM", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", nil},
		{"corrupt key", pemBlock("PRIVATE KEY", pkcs8RSA[:100]), nil},
		{"public key only", pemBlock("PUBLIC KEY", []byte{1}), nil},
		{"not PEM", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParsePrivateKeyPEM([]byte(tt.pem))
			if tt.want == nil {
				if err == nil || !errors.Is(err, ErrMisconfigured) {
					t.Fatalf("got %T, %v; want an ErrMisconfigured error", key, err)
				}
				if strings.Contains(err.Error(), "MII") || strings.Contains(err.Error(), "AAAA") {
					t.Errorf("error shows key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(tt.want) {
				t.Errorf("wrong key")
			}
		})
	}
}

func TestSigningAlg(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name  string
		key   crypto.Signer
		want  string
		alg   string
		field string // of the ConfigError, "" when valid
	}{
		{"RSA infers RS384", testRSA(), "", RS384, ""},
		{"P-384 infers ES384", testEC(), "", ES384, ""},
		{"explicit RS384", testRSA(), RS384, RS384, ""},
		{"explicit ES384", testEC(), ES384, ES384, ""},
		{"ES384 with an RSA key", testRSA(), ES384, "", "SigningAlg"},
		{"RS384 with an ECDSA key", testEC(), RS384, "", "SigningAlg"},
		{"PS384 is not offered", testRSA(), "PS384", "", "SigningAlg"},
		{"lowercase", testRSA(), "rs384", "", "SigningAlg"},
		{"1024-bit RSA", small, "", "", "PrivateKey"},
		{"P-256", p256, "", "", "PrivateKey"},
		{"Ed25519", ed, "", "", "PrivateKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alg, err := signingAlg(tt.key, tt.want)
			var ce *ConfigError
			switch {
			case tt.field == "" && (err != nil || alg != tt.alg):
				t.Errorf("signingAlg = %q, %v; want %q", alg, err, tt.alg)
			case tt.field != "" && (!errors.As(err, &ce) || ce.Field != tt.field):
				t.Errorf("err = %v, want a ConfigError for %s", err, tt.field)
			}
		})
	}
}

func TestValidatePrivateKeyJWT(t *testing.T) {
	ok := Config{TokenURL: "https://ehr.example/token", ClientID: "c", AuthMethod: PrivateKeyJWT,
		PrivateKey: testEC(), KeyID: "k1", Sessions: scs.New()}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"valid", func(*Config) {}, ""},
		{"valid RSA with explicit alg", func(c *Config) { c.PrivateKey, c.SigningAlg = testRSA(), RS384 }, ""},
		{"no key", func(c *Config) { c.PrivateKey = nil }, "PrivateKey"},
		{"no kid", func(c *Config) { c.KeyID = "" }, "KeyID"},
		{"a secret too", func(c *Config) { c.ClientSecret = "s" }, "ClientSecret"},
		{"alg mismatch", func(c *Config) { c.SigningAlg = RS384 }, "SigningAlg"},
		{"key without method: never guessed", func(c *Config) { c.AuthMethod = "" }, "AuthMethod"},
		{"key with client_secret_post", func(c *Config) { c.AuthMethod, c.ClientSecret = ClientSecretPost, "s" }, "PrivateKey"},
		{"key with none", func(c *Config) { c.AuthMethod = None }, "AuthMethod"},
		{"kid with a secret method", func(c *Config) { c.AuthMethod, c.ClientSecret, c.PrivateKey = ClientSecretBasic, "s", nil }, "KeyID"},
		{"revocation URL over http", func(c *Config) { c.RevocationURL = "http://ehr.example/revoke" }, "RevocationURL"},
		{"unknown revocation style", func(c *Config) { c.RevocationURL, c.RevocationStyle = "https://ehr.example/revoke", 7 }, "RevocationStyle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			r, err := New(cfg)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.cfg.SigningAlg == "" || r.signer == nil {
					t.Error("no signer")
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field || !errors.Is(err, ErrMisconfigured) {
				t.Fatalf("err = %v, want a ConfigError for %s", err, tt.field)
			}
		})
	}
}

func TestECDSAFixed(t *testing.T) {
	// A signature whose r has a leading zero byte still makes 96 bytes.
	for range 50 {
		der, err := testEC().Sign(rand.Reader, make([]byte, 48), crypto.SHA384)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ecdsaFixed(der, 48)
		if err != nil || len(raw) != 96 {
			t.Fatalf("ecdsaFixed: %d bytes, %v", len(raw), err)
		}
	}
	for _, bad := range [][]byte{nil, {0x30, 0x00}, {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0xff}} {
		if _, err := ecdsaFixed(bad, 48); err == nil {
			t.Errorf("accepted % x", bad)
		}
	}
}

// failingSigner is a KMS that cannot be reached.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("kms unreachable")
}

func TestAssertionErrorIsTransient(t *testing.T) {
	r, err := New(Config{TokenURL: "https://ehr.example/token", ClientID: "c", AuthMethod: PrivateKeyJWT,
		PrivateKey: failingSigner{testEC()}, KeyID: "k1", Sessions: scs.New()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.clientAssertion()
	var ae *AssertionError
	if !errors.As(err, &ae) || !errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "kms unreachable") {
		t.Errorf("err = %v", err)
	}
}
