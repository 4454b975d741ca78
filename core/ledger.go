package core

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// fingerprint identifies a refresh token without keeping it as a map key.
type fingerprint [sha256.Size]byte

func fingerprintOf(refreshToken string) fingerprint {
	return sha256.Sum256([]byte(refreshToken))
}

// ledger remembers, for every refresh token this process redeemed, the
// newest token of its grant. It is what keeps a stale copy of a session
// (written back by a slower request after a rotation) from ever sending a
// redeemed refresh token again: the refresher looks the stale refresh token
// up here and gets the grant's newest token instead.
//
// It also remembers the grants Logout revoked, so that no copy of their
// tokens is used again.
//
// Entries live as long as a session can (the session manager's Lifetime):
// no copy of a session, stale or not, outlives that.
type ledger struct {
	mu        sync.Mutex
	ttl       time.Duration
	redeemed  map[fingerprint]*lineage  // redeemed refresh token → its grant
	current   map[fingerprint]*lineage  // grant's current refresh token → its grant
	revoked   map[fingerprint]time.Time // token revoked by Logout → entry expiry
	anyRevoke atomic.Bool               // set once revoked has had an entry
	// revokedAccess holds the access tokens Logout revoked (string → expiry
	// time.Time), for the per-request check in Refresher.load: a lock-free
	// map look-up, without hashing the token with SHA-256.
	revokedAccess sync.Map
	nextSweep     time.Time
}

// lineage is one grant as this process has seen it: its newest token.
type lineage struct {
	head    *record
	expires time.Time
	revoked bool // by Logout
}

func newLedger(ttl time.Duration) *ledger {
	return &ledger{
		ttl:      ttl,
		redeemed: make(map[fingerprint]*lineage),
		current:  make(map[fingerprint]*lineage),
		revoked:  make(map[fingerprint]time.Time),
	}
}

// revoke records that Logout revoked the grant of the given tokens: their
// access and refresh tokens, and every refresh token of their lineage, must
// not be used again.
func (l *ledger) revoke(now time.Time, toks ...*Token) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.anyRevoke.Store(true)
	for _, t := range toks {
		if t.AccessToken != "" {
			l.revokedAccess.Store(t.AccessToken, now.Add(l.ttl))
		}
		for _, s := range []string{t.AccessToken, t.RefreshToken} {
			if s != "" {
				l.revoked[fingerprintOf(s)] = now.Add(l.ttl)
			}
		}
		if t.RefreshToken == "" {
			continue
		}
		fp := fingerprintOf(t.RefreshToken)
		for _, lin := range []*lineage{l.current[fp], l.redeemed[fp]} {
			if lin != nil {
				lin.revoked = true
			}
		}
	}
	l.sweep(now)
}

// isRevokedAccess reports whether Logout revoked the access token at. It
// is cheap enough for every request; isRevoked, which also knows the
// grant's older tokens, runs before each refresh.
func (l *ledger) isRevokedAccess(at string, now func() time.Time) bool {
	if !l.anyRevoke.Load() {
		return false // no clock read either, until a Logout happened
	}
	exp, ok := l.revokedAccess.Load(at)
	return ok && now().Before(exp.(time.Time))
}

// isRevoked reports whether Logout revoked t's grant. It costs nothing
// until a Logout happened.
func (l *ledger) isRevoked(t *Token, now time.Time) bool {
	if !l.anyRevoke.Load() {
		return false
	}
	at := fingerprintOf(t.AccessToken)
	var rt fingerprint
	if t.RefreshToken != "" {
		rt = fingerprintOf(t.RefreshToken)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if exp, ok := l.revoked[at]; ok && now.Before(exp) {
		return true
	}
	if t.RefreshToken == "" {
		return false
	}
	if exp, ok := l.revoked[rt]; ok && now.Before(exp) {
		return true
	}
	for _, lin := range []*lineage{l.current[rt], l.redeemed[rt]} {
		if lin != nil && lin.revoked && now.Before(lin.expires) {
			return true
		}
	}
	return false
}

// newest returns the newest token of the grant whose refresh token fp was
// already redeemed, or nil if fp was never redeemed here.
func (l *ledger) newest(fp fingerprint, now time.Time) *record {
	l.mu.Lock()
	defer l.mu.Unlock()
	lin := l.redeemed[fp]
	if lin == nil || !now.Before(lin.expires) {
		return nil
	}
	return lin.head
}

// redeem records that the refresh token fp was redeemed for next.
func (l *ledger) redeem(fp fingerprint, next *record, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lin := l.current[fp]
	if lin == nil {
		lin = &lineage{}
	}
	delete(l.current, fp)
	lin.head = next
	lin.expires = now.Add(l.ttl)
	nextFP := fingerprintOf(next.Token.RefreshToken)
	if nextFP != fp {
		// Rotated: fp must never be sent again.
		l.redeemed[fp] = lin
	}
	l.current[nextFP] = lin
	l.sweep(now)
}

// sweep drops expired entries, at most once per tenth of the ttl.
func (l *ledger) sweep(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(l.ttl / 10)
	for fp, lin := range l.redeemed {
		if !now.Before(lin.expires) {
			delete(l.redeemed, fp)
		}
	}
	for fp, lin := range l.current {
		if !now.Before(lin.expires) {
			delete(l.current, fp)
		}
	}
	for fp, exp := range l.revoked {
		if !now.Before(exp) {
			delete(l.revoked, fp)
		}
	}
	l.revokedAccess.Range(func(k, exp any) bool {
		if !now.Before(exp.(time.Time)) {
			l.revokedAccess.Delete(k)
		}
		return true
	})
}
