package core

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// EncryptionKeySize is the size of each of Config.EncryptionKeys: 32 bytes,
// for AES-256-GCM.
const EncryptionKeySize = 32

// Sealed session values (Config.EncryptionKeys) are
//
//	version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag
//
// where the plaintext is the JSON of a sealedRecord, and the version, the
// key id and the session key name are authenticated as additional data, so
// a value cannot be moved to another session key unnoticed.
const (
	sealVersion   = 1
	keyIDSize     = 4
	sealHeaderLen = 1 + keyIDSize
)

// errUnsealed is why a sealed session value could not be opened; load turns
// it into ErrCorruptSession.
var errUnsealed = errors.New("smartrefresh: session value cannot be decrypted (unknown key, tampered or not a sealed token)")

// sealer encrypts the token records kept in sessions with AES-256-GCM and
// random nonces. The first key seals; every key opens, so keys rotate by
// putting a new one first and dropping an old one once no session can hold
// a value it sealed (the session manager's Lifetime).
type sealer struct {
	keys []sealKey
	name string // the session key, authenticated with every value
}

type sealKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// newSealer returns a sealer for keys, or nil when there are none.
func newSealer(keys [][]byte, sessionKey string) (*sealer, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	s := &sealer{name: sessionKey}
	for i, key := range keys {
		if err := checkEncryptionKey(i, key); err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, &ConfigError{Field: "EncryptionKeys", Reason: err.Error()}
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, &ConfigError{Field: "EncryptionKeys", Reason: err.Error()}
		}
		s.keys = append(s.keys, sealKey{id: keyID(key), aead: aead})
	}
	return s, nil
}

// checkEncryptionKey validates keys[i].
func checkEncryptionKey(i int, key []byte) error {
	if len(key) != EncryptionKeySize {
		return &ConfigError{Field: "EncryptionKeys",
			Reason: "key " + strconv.Itoa(i) + " has " + strconv.Itoa(len(key)) + " bytes; each key must have 32 (AES-256)"}
	}
	return nil
}

// keyID names a key in sealed values without revealing it.
func keyID(key []byte) [keyIDSize]byte {
	sum := sha256.Sum256(append([]byte("smartrefresh session key id\x00"), key...))
	return [keyIDSize]byte(sum[:keyIDSize])
}

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

// open decrypts a value made by seal with any of the keys. Every failure is
// errUnsealed; open never panics, whatever blob holds.
func (s *sealer) open(blob []byte) (*record, error) {
	if len(blob) < sealHeaderLen || blob[0] != sealVersion {
		return nil, errUnsealed
	}
	id := [keyIDSize]byte(blob[1:sealHeaderLen])
	for _, k := range s.keys {
		if k.id != id {
			continue
		}
		plain, err := k.aead.Open(nil, nil, blob[sealHeaderLen:], s.aad(blob[:sealHeaderLen]))
		if err != nil {
			continue
		}
		return decodeSealed(plain)
	}
	return nil, errUnsealed
}

func (s *sealer) aad(header []byte) []byte {
	return append(append([]byte(nil), header...), s.name...)
}

// sealedRecord is the plaintext of a sealed value. It names every field of
// record and Token explicitly: Token's own JSON encoding redacts the
// secrets. TestSealedRecordCoversToken fails when Token grows a field that
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
}

func sealedFrom(rec *record) sealedRecord {
	t := &rec.Token
	return sealedRecord{
		AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken,
		Expiry: t.Expiry, Scope: t.Scope, IDToken: t.IDToken, Patient: t.Patient,
		Encounter: t.Encounter, Extra: t.Extra, Obtained: rec.Obtained, Refreshes: rec.Refreshes,
	}
}

// decodeSealed decodes the plaintext of a sealed value. A record without an
// access token is not a token.
func decodeSealed(plain []byte) (*record, error) {
	var s sealedRecord
	if err := json.Unmarshal(plain, &s); err != nil || s.AccessToken == "" {
		return nil, errUnsealed
	}
	return &record{
		Token: Token{
			AccessToken: s.AccessToken, TokenType: s.TokenType, RefreshToken: s.RefreshToken,
			Expiry: s.Expiry, Scope: s.Scope, IDToken: s.IDToken, Patient: s.Patient,
			Encounter: s.Encounter, Extra: s.Extra,
		},
		Obtained:  s.Obtained,
		Refreshes: s.Refreshes,
	}, nil
}

// sessionValue returns what the session holds for rec: rec itself, or its
// sealed bytes when EncryptionKeys are configured.
func (r *Refresher) sessionValue(rec *record) (any, error) {
	if r.sealer == nil {
		return rec, nil
	}
	return r.sealer.seal(rec)
}

// decodeSessionRecord returns the record a session value holds, or false
// when it holds none that this Refresher accepts: with EncryptionKeys only
// a value sealed with one of them, otherwise only a *record. It never
// panics.
func (r *Refresher) decodeSessionRecord(v any) (*record, bool) {
	if r.sealer == nil {
		rec, ok := v.(*record)
		return rec, ok && rec != nil && rec.Token.AccessToken != ""
	}
	blob, ok := v.([]byte)
	if !ok {
		return nil, false
	}
	rec, err := r.sealer.open(blob)
	return rec, err == nil
}
