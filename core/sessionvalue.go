package core

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"
)

// The session value is what the session holds under Config.SessionKey. It
// is a string, which every scs codec carries unchanged (gob, JSON, codecs
// that keep string fields only), in one of two forms:
//
//	smartrefresh.record.v2:{"access_token":…}        without EncryptionKeys: the JSON of sealedRecord
//	smartrefresh.sealed.v1:AQAAAAA…                  with EncryptionKeys: the sealed bytes, base64url
//
// Versions before it stored a *record (gob name "smartrefresh.record.v1")
// or, with EncryptionKeys, the sealed bytes as a []byte. Both are still
// read, so that sessions stored before an upgrade stay logged in; they are
// rewritten in the new form at their next refresh.
//
// A string of the shape "smartrefresh.<name>.v<n>:…" in a form this version
// does not know was stored by a newer version (a replica of the next release during
// a rolling deploy): it is left as it is and the request fails as
// transient (ErrUnknownSessionFormat), like a value sealed with an
// unknown key.
const (
	plainPrefix  = "smartrefresh.record.v2:"
	sealedPrefix = "smartrefresh.sealed.v1:"
	formatPrefix = "smartrefresh."
)

// ErrUnknownSessionFormat: the session's token was stored in a format of a
// newer smartrefresh version, by a replica running it. The value is left
// as it is and the request fails as transient (503).
var ErrUnknownSessionFormat = fmt.Errorf("%w: the session's token was stored by a newer version of smartrefresh", ErrTransient)

// errNotAToken is why a session value that is no token of this package
// (another type, a tampered or truncated value, an encrypted value without
// EncryptionKeys being found by one with them) is rejected; load turns it
// into ErrCorruptSession.
var errNotAToken = errors.New("smartrefresh: session value is not a smartrefresh token")

// sessionValue returns what the session holds for rec: the text of rec,
// sealed when EncryptionKeys are configured.
func (r *Refresher) sessionValue(rec *record) (string, error) {
	if !r.sealer.canSeal() {
		plain, err := json.Marshal(sealedFrom(rec))
		if err != nil {
			return "", err
		}
		return plainPrefix + string(plain), nil
	}
	blob, err := r.sealer.seal(rec)
	if err != nil {
		return "", err
	}
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(blob), nil
}

// decodeSessionRecord returns the record a session value holds. The error
// matches ErrTransient when the value may be a token this process cannot
// read (ErrUnknownEncryptionKey, ErrUnknownSessionFormat): it must be left
// alone. Any other error means the value is not a token this Refresher
// accepts: with EncryptionKeys, only a value sealed with one of its keys;
// without, a plain value, or one sealed with one of DecryptionKeys. It
// never panics.
//
// A string decoded once is remembered (valueCache), so a request whose
// session holds an unchanged value costs a hash and a comparison, not a
// parse and a decryption.
func (r *Refresher) decodeSessionRecord(v any) (*record, error) {
	switch v := v.(type) {
	case string:
		if e := r.values.get(v); e != nil && e.rec != nil {
			return e.rec, nil
		}
		rec, err := r.decodeText(v)
		if err != nil {
			return nil, err
		}
		r.values.add(&valueEntry{value: v, rec: rec})
		return rec, nil
	case *record: // stored by versions before the text forms, without encryption
		if r.sealer.canSeal() || v == nil || v.Token.AccessToken == "" {
			return nil, errNotAToken
		}
		return v, nil
	case []byte: // stored by versions before the text forms, encrypted
		return r.sealer.open(v)
	}
	return nil, errNotAToken
}

// decodeText decodes a session value of the text forms.
func (r *Refresher) decodeText(s string) (*record, error) {
	switch {
	case strings.HasPrefix(s, sealedPrefix):
		blob, err := base64.RawURLEncoding.DecodeString(s[len(sealedPrefix):])
		if err != nil {
			return nil, errNotAToken
		}
		return r.sealer.open(blob)
	case strings.HasPrefix(s, plainPrefix):
		if r.sealer.canSeal() {
			// Stored in the clear, while every value must be sealed:
			// someone with write access to the store may have put it.
			return nil, errNotAToken
		}
		rec, err := decodeSealed([]byte(s[len(plainPrefix):]))
		if err != nil {
			return nil, errNotAToken
		}
		return rec, nil
	case isVersionedForm(s):
		return nil, ErrUnknownSessionFormat
	}
	return nil, errNotAToken
}

// isVersionedForm reports whether s has the shape of a session value of
// some version, "smartrefresh.<name>.v<n>:…", the shape every later form
// will keep.
func isVersionedForm(s string) bool {
	rest, ok := strings.CutPrefix(s, formatPrefix)
	if !ok {
		return false
	}
	head, _, ok := strings.Cut(rest, ":")
	name, version, ok2 := strings.Cut(head, ".v")
	if !ok || !ok2 || name == "" || version == "" {
		return false
	}
	for _, c := range name {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	for _, c := range version {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// valueCacheSize is the number of session values a Refresher remembers
// decoded. With more sessions active at once than that, some requests
// decode their value again (as many as collide in the table); the memory
// held is at most valueCacheSize values and records.
const valueCacheSize = 2048

// valueCache remembers the record decoded from recently read session
// values, keyed by the value itself. Decoding is a function of the value
// (and the Refresher's keys, fixed at New), so a hit is exactly what
// decoding would return; records are never modified once made, so sharing
// one between requests is safe. It is a direct-mapped table of atomic
// pointers: reads take no lock and never contend; a new value replaces
// whatever shared its slot.
type valueCache struct {
	seed  maphash.Seed
	slots [valueCacheSize]atomic.Pointer[valueEntry]
}

type valueEntry struct {
	value string
	rec   *record    // a token's value
	set   *launchSet // or a launch index's (launches.go)
}

func newValueCache() *valueCache { return &valueCache{seed: maphash.MakeSeed()} }

// valueSample is how much of each end of a long value picks its slot.
const valueSample = 64

// slot returns value's slot. A long value is placed by its length and its
// two ends only, so that placing it costs the same however long its tokens
// are: a sealed value ends in its authentication tag, a plain one in the
// time its token was obtained. Values that share a slot only cost a decode;
// get compares the whole value.
func (c *valueCache) slot(value string) *atomic.Pointer[valueEntry] {
	h := uint64(len(value))
	if len(value) <= 2*valueSample {
		h ^= maphash.String(c.seed, value)
	} else {
		h ^= maphash.String(c.seed, value[:valueSample]) ^
			bits.RotateLeft64(maphash.String(c.seed, value[len(value)-valueSample:]), 31)
	}
	return &c.slots[h%valueCacheSize]
}

// get returns what value was remembered to decode to, or nil.
func (c *valueCache) get(value string) *valueEntry {
	if e := c.slot(value).Load(); e != nil && e.value == value {
		return e
	}
	return nil
}

// add remembers that e.value decodes to e.rec or e.set.
func (c *valueCache) add(e *valueEntry) {
	c.slot(e.value).Store(e)
}
