package core

import (
	"crypto/rand"
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

// newGrantID names a new grant: the token Save stores and every token
// refreshed from it carry it (record.Grant).
func newGrantID() string { return rand.Text() }

// ledger remembers, for every grant this process refreshed, the grant's
// newest token. It is what keeps a stale copy of a session (written back
// by a slower request after a rotation) from ever sending a redeemed
// refresh token again: the refresher finds the copy's grant here and gets
// the grant's newest token instead.
//
// A copy is stale when its grant's newest token here counts more
// refreshes than the copy (record.Refreshes): the tokens of one grant form
// a chain, each refresh token redeemed once for the next, so every token
// of the chain before the newest has been redeemed. The ledger therefore
// keeps one entry per grant, however many times the grant rotated, instead
// of one per redeemed refresh token. Records saved before grants were
// named (record.Grant empty) are found by the fingerprint of their refresh
// token instead (legacy): one entry per such record redeemed here, since
// the record that replaces it carries a grant.
//
// A grant's entry lives as long as a copy of its session may (see
// Refresher.retention): every redemption, and every stale copy met, moves
// its expiry to at least that copy's bound. Expired entries are swept a
// few at a time on each redemption, never all at once on a request.
//
// It also remembers the grants Logout revoked, so that no copy of their
// tokens is used again.
type ledger struct {
	mu     sync.Mutex
	ttl    time.Duration            // retention of the entries of Logout's revoked tokens
	grants map[string]*lineage      // record.Grant → the grant
	heads  map[fingerprint]*lineage // a grant's newest refresh token → the grant
	legacy map[fingerprint]*lineage // redeemed refresh token of a record without Grant → its grant
	all    []*lineage               // every grant, for the incremental sweep
	cursor int                      // where the sweep goes on

	revoked   map[fingerprint]time.Time // token revoked by Logout → entry expiry
	anyRevoke atomic.Bool               // set once revoked has had an entry
	// revokedAccess holds the access tokens Logout revoked (string → expiry
	// time.Time), for the per-request check in Refresher.load: a lock-free
	// map look-up, without hashing the token with SHA-256.
	revokedAccess sync.Map
	nextSweep     time.Time // of revoked and revokedAccess
}

// lineage is one grant as this process has seen it: its newest token.
type lineage struct {
	grant   string        // record.Grant, or "" for a grant known only by legacy records
	head    *record       // the newest token
	headFP  fingerprint   // of head's refresh token, its key in heads
	legacy  []fingerprint // its keys in ledger.legacy
	expires time.Time
	revoked bool // by Logout
	slot    int  // index in ledger.all
}

// sweepBatch is how many grants each redemption checks for expiry: more
// than one, so that expired grants go faster than new ones come.
const sweepBatch = 16

func newLedger(ttl time.Duration) *ledger {
	return &ledger{
		ttl:     ttl,
		grants:  make(map[string]*lineage),
		heads:   make(map[fingerprint]*lineage),
		legacy:  make(map[fingerprint]*lineage),
		revoked: make(map[fingerprint]time.Time),
	}
}

// revoke records that Logout revoked the grant of the given tokens: their
// access and refresh tokens, and every refresh token of their lineage, must
// not be used again until until, when no copy of the session may hold them
// any more (Refresher.retention; at least ttl from now).
func (l *ledger) revoke(now, until time.Time, toks ...*Token) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.anyRevoke.Store(true)
	until = maxTime(until, now.Add(l.ttl))
	for _, t := range toks {
		if t.AccessToken != "" {
			l.revokedAccess.Store(t.AccessToken, until)
		}
		for _, s := range []string{t.AccessToken, t.RefreshToken} {
			if s != "" {
				l.revoked[fingerprintOf(s)] = until
			}
		}
		if t.RefreshToken == "" {
			continue
		}
		fp := fingerprintOf(t.RefreshToken)
		for _, lin := range []*lineage{l.heads[fp], l.legacy[fp]} {
			if lin != nil {
				lin.revoked = true
				lin.expires = maxTime(lin.expires, until)
			}
		}
	}
	l.sweepRevoked(now)
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
	return l.isRevokedRecord(&record{Token: *t}, now)
}

// isRevokedRecord reports whether Logout revoked rec's grant: rec's own
// tokens, or any token of its grant.
func (l *ledger) isRevokedRecord(rec *record, now time.Time) bool {
	if !l.anyRevoke.Load() {
		return false
	}
	t := &rec.Token
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
	if lin := l.grants[rec.Grant]; rec.Grant != "" && lin != nil && lin.revoked && now.Before(lin.expires) {
		return true
	}
	if t.RefreshToken == "" {
		return false
	}
	if exp, ok := l.revoked[rt]; ok && now.Before(exp) {
		return true
	}
	for _, lin := range []*lineage{l.heads[rt], l.legacy[rt]} {
		if lin != nil && lin.revoked && now.Before(lin.expires) {
			return true
		}
	}
	return false
}

// newest returns the newest token of cur's grant when cur's refresh token
// (fingerprint fp) was already redeemed here, or nil. A copy found stale
// may live until until, and its grant is remembered at least that long
// (a zero until changes nothing).
func (l *ledger) newest(cur *record, fp fingerprint, now, until time.Time) *record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lin *lineage
	if g := l.grants[cur.Grant]; cur.Grant != "" && g != nil && g.head.Refreshes > cur.Refreshes {
		lin = g
	} else {
		lin = l.legacy[fp]
	}
	if lin == nil || !now.Before(lin.expires) {
		return nil
	}
	if until.After(lin.expires) {
		lin.expires = until
	}
	return lin.head
}

// head returns the newest token of the grant whose newest refresh token,
// as known here, is fp, or nil. For a grant whose server does not rotate
// refresh tokens it is the newest access token.
func (l *ledger) head(fp fingerprint, now time.Time) *record {
	l.mu.Lock()
	defer l.mu.Unlock()
	lin := l.heads[fp]
	if lin == nil || !now.Before(lin.expires) {
		return nil
	}
	return lin.head
}

// redeem records that cur's refresh token, fp, was redeemed for next (cur
// is nil when only fp is known), and that copies of the session may live
// until until.
func (l *ledger) redeem(cur *record, fp fingerprint, next *record, now, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// The usual case: a grant's newest token, as known here, redeemed for
	// the next one of the same grant. Copies of cur are then recognised as
	// stale by their grant. Anything else also remembers fp itself: a
	// grant's first redemption here (the token Save stored may have been
	// saved into another session too), a record without a grant, a token
	// saved again under a new grant, a redemption learnt from another
	// replica. That is at most a few entries per grant, not one per
	// rotation.
	byGrant := false
	if cur != nil && cur.Grant != "" && next.Grant == cur.Grant {
		prior := l.grants[cur.Grant]
		byGrant = prior != nil && prior.headFP == fp
	}
	var lin *lineage
	if next.Grant != "" {
		lin = l.grants[next.Grant]
	}
	if lin == nil {
		lin = l.heads[fp] // the grant as known by its head's refresh token
	}
	if lin == nil {
		lin = &lineage{slot: len(l.all)}
		l.all = append(l.all, lin)
	}
	if lin.grant == "" && next.Grant != "" {
		lin.grant = next.Grant
		l.grants[next.Grant] = lin
	}
	nextFP := fingerprintOf(next.Token.RefreshToken)
	if lin.head == nil || next.Refreshes >= lin.head.Refreshes {
		if lin.head != nil && l.heads[lin.headFP] == lin {
			delete(l.heads, lin.headFP)
		}
		lin.head, lin.headFP = next, nextFP
		l.heads[nextFP] = lin
	}
	if nextFP != fp && !byGrant {
		// A copy holding fp cannot be told stale by its grant: remember
		// fp itself.
		if l.legacy[fp] != lin {
			l.legacy[fp] = lin
			lin.legacy = append(lin.legacy, fp)
		}
	}
	if until.After(lin.expires) {
		lin.expires = until
	}
	l.sweepSome(now)
}

// sweepSome drops the expired grants among the next sweepBatch ones.
func (l *ledger) sweepSome(now time.Time) {
	for range min(sweepBatch, len(l.all)) {
		if l.cursor >= len(l.all) {
			l.cursor = 0
		}
		if lin := l.all[l.cursor]; !now.Before(lin.expires) {
			l.drop(lin) // moves the last grant to cursor: look at it next
			continue
		}
		l.cursor++
	}
}

// drop forgets lin.
func (l *ledger) drop(lin *lineage) {
	if l.grants[lin.grant] == lin {
		delete(l.grants, lin.grant)
	}
	if l.heads[lin.headFP] == lin {
		delete(l.heads, lin.headFP)
	}
	for _, fp := range lin.legacy {
		if l.legacy[fp] == lin {
			delete(l.legacy, fp)
		}
	}
	last := l.all[len(l.all)-1]
	l.all[lin.slot] = last
	last.slot = lin.slot
	l.all[len(l.all)-1] = nil
	l.all = l.all[:len(l.all)-1]
}

// sweepRevoked drops expired entries of Logout's revoked tokens, at most
// once per tenth of the ttl; it runs on Logout only.
func (l *ledger) sweepRevoked(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(l.ttl / 10)
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

// maxTime returns the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
