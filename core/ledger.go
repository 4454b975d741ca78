package core

import (
	"crypto/sha256"
	"sync"
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
// Entries live as long as a session can (the session manager's Lifetime):
// no copy of a session, stale or not, outlives that.
type ledger struct {
	mu        sync.Mutex
	ttl       time.Duration
	redeemed  map[fingerprint]*lineage // redeemed refresh token → its grant
	current   map[fingerprint]*lineage // grant's current refresh token → its grant
	nextSweep time.Time
}

// lineage is one grant as this process has seen it: its newest token.
type lineage struct {
	head    *record
	expires time.Time
}

func newLedger(ttl time.Duration) *ledger {
	return &ledger{
		ttl:      ttl,
		redeemed: make(map[fingerprint]*lineage),
		current:  make(map[fingerprint]*lineage),
	}
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
}

// size reports the number of redeemed refresh tokens remembered.
func (l *ledger) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.redeemed)
}
