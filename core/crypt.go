package core

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// EncryptionKeySize is the size of each of Config.EncryptionKeys and
// Config.DecryptionKeys: 32 bytes, for AES-256-GCM.
const EncryptionKeySize = 32

// Sealed values (Config.EncryptionKeys) are
//
//	version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag
//
// (the session holds them as text: sessionvalue.go), where the plaintext is the JSON of a sealedRecord, and the version, the
// key id and the session key name are authenticated as additional data, so
// a value cannot be moved to another session key unnoticed.
const (
	sealVersion   = 1
	keyIDSize     = 4
	sealHeaderLen = 1 + keyIDSize
)

// errUnsealed is why a sealed session value could not be opened under a key
// this process has; load turns it into ErrCorruptSession.
var errUnsealed = errors.New("smartrefresh: session value cannot be decrypted (tampered or not a sealed token)")

// ErrUnknownEncryptionKey: the session's token was sealed with an
// encryption key this process does not have (another replica's newer or
// older key, during a rotation). The value is left as it is, since a
// replica that has the key can use it, and the request fails as transient
// (503). Give every replica each key in EncryptionKeys or DecryptionKeys
// before any replica encrypts with it: see Config.DecryptionKeys.
var ErrUnknownEncryptionKey = fmt.Errorf("%w: the session's token was encrypted with a key this process does not have (see Config.DecryptionKeys)", ErrTransient)

// sealer encrypts the token records kept in sessions with AES-256-GCM and
// random nonces. The first of Config.EncryptionKeys seals; every key of
// EncryptionKeys and DecryptionKeys opens. A sealer made of DecryptionKeys
// only opens and never seals.
type sealer struct {
	keys     []sealKey
	encrypts bool   // keys[0] seals (Config.EncryptionKeys is set)
	name     string // the session key, authenticated with every value
}

type sealKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// newSealer returns a sealer for the encrypting keys enc and the
// decrypt-only keys dec, or nil when there are none.
func newSealer(enc, dec [][]byte, sessionKey string) (*sealer, error) {
	if len(enc)+len(dec) == 0 {
		return nil, nil
	}
	s := &sealer{name: sessionKey, encrypts: len(enc) > 0}
	for _, list := range []struct {
		field string
		keys  [][]byte
	}{{"EncryptionKeys", enc}, {"DecryptionKeys", dec}} {
		for i, key := range list.keys {
			if err := checkEncryptionKey(list.field, i, key); err != nil {
				return nil, err
			}
			block, err := aes.NewCipher(key)
			if err != nil {
				return nil, &ConfigError{Field: list.field, Reason: err.Error()}
			}
			aead, err := cipher.NewGCMWithRandomNonce(block)
			if err != nil {
				return nil, &ConfigError{Field: list.field, Reason: err.Error()}
			}
			s.keys = append(s.keys, sealKey{id: keyID(key), aead: aead})
		}
	}
	return s, nil
}

// checkEncryptionKey validates key i of the Config field named field.
func checkEncryptionKey(field string, i int, key []byte) error {
	if len(key) != EncryptionKeySize {
		return &ConfigError{Field: field,
			Reason: "key " + strconv.Itoa(i) + " has " + strconv.Itoa(len(key)) + " bytes; each key must have 32 (AES-256)"}
	}
	return nil
}

// keyID names a key in sealed values without revealing it.
func keyID(key []byte) [keyIDSize]byte {
	sum := sha256.Sum256(append([]byte("smartrefresh session key id\x00"), key...))
	return [keyIDSize]byte(sum[:keyIDSize])
}

// canSeal reports whether s encrypts (Config.EncryptionKeys is set). A nil
// sealer does not.
func (s *sealer) canSeal() bool { return s != nil && s.encrypts }

// seal encrypts rec with the first key.
func (s *sealer) seal(rec *record) ([]byte, error) {
	plain, err := json.Marshal(sealedFrom(rec))
	if err != nil {
		return nil, err
	}
	k := s.keys[0]
	out := make([]byte, sealHeaderLen, sealHeaderLen+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:], k.id[:])
	return k.aead.Seal(out, nil, plain, s.aad(out[:sealHeaderLen])), nil
}

// open decrypts a value made by seal with any of the keys. A value sealed
// with a key s does not have (or any sealed value, when s is nil) is
// ErrUnknownEncryptionKey; every other failure is errUnsealed. open never
// panics, whatever blob holds.
func (s *sealer) open(blob []byte) (*record, error) {
	if len(blob) < sealHeaderLen || blob[0] != sealVersion {
		return nil, errUnsealed
	}
	if s == nil {
		return nil, ErrUnknownEncryptionKey
	}
	id := [keyIDSize]byte(blob[1:sealHeaderLen])
	known := false
	for _, k := range s.keys {
		if k.id != id {
			continue
		}
		known = true
		plain, err := k.aead.Open(nil, nil, blob[sealHeaderLen:], s.aad(blob[:sealHeaderLen]))
		if err != nil {
			continue // another key with the same id, however unlikely
		}
		return decodeSealed(plain)
	}
	if !known {
		return nil, ErrUnknownEncryptionKey
	}
	// Only a failed authentication under a key this process has is
	// corruption: the value was tampered with, or moved from another
	// session key.
	return nil, errUnsealed
}

func (s *sealer) aad(header []byte) []byte {
	return append(append([]byte(nil), header...), s.name...)
}

// sealedRecord is the JSON of a record: the plaintext of a sealed value,
// the text of a plain session value (sessionvalue.go) and of a
// Coordinator's record. It names every field of record and Token
// explicitly: Token's own JSON encoding redacts the secrets. TestSealedRecordCoversToken fails when Token grows a field that
// is not here.
type sealedRecord struct {
	AccessToken  string         `json:"access_token"`
	TokenType    string         `json:"token_type,omitempty"`
	RefreshToken string         `json:"refresh_token,omitempty"`
	Expiry       time.Time      `json:"expiry,omitzero"`
	Scope        string         `json:"scope,omitempty"`
	IDToken      string         `json:"id_token,omitempty"`
	Patient      string         `json:"patient,omitempty"`
	Encounter    string         `json:"encounter,omitempty"`
	Extra        map[string]any `json:"extra,omitempty"`
	Obtained     time.Time      `json:"obtained,omitzero"`
	Refreshes    int            `json:"refreshes,omitempty"`
	Grant        string         `json:"grant,omitempty"`
}

func sealedFrom(rec *record) sealedRecord {
	t := &rec.Token
	return sealedRecord{
		AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken,
		Expiry: t.Expiry, Scope: t.Scope, IDToken: t.IDToken, Patient: t.Patient,
		Encounter: t.Encounter, Extra: t.Extra, Obtained: rec.Obtained, Refreshes: rec.Refreshes,
		Grant: rec.Grant,
	}
}

// decodeSealed decodes the JSON of a record. A record without an access
// token is not a token.
func decodeSealed(plain []byte) (*record, error) {
	var s sealedRecord
	if err := json.Unmarshal(plain, &s); err != nil || s.AccessToken == "" {
		return nil, errUnsealed
	}
	if len(s.Extra) == 0 {
		s.Extra = nil // as it is stored: "extra" is omitted when empty
	}
	return &record{
		Token: Token{
			AccessToken: s.AccessToken, TokenType: s.TokenType, RefreshToken: s.RefreshToken,
			Expiry: s.Expiry, Scope: s.Scope, IDToken: s.IDToken, Patient: s.Patient,
			Encounter: s.Encounter, Extra: s.Extra,
		},
		Obtained:  s.Obtained,
		Refreshes: s.Refreshes,
		Grant:     s.Grant,
	}, nil
}
