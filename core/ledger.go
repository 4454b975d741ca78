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
// It also remembers the grants that ended (Logout revoked them, or the
// token endpoint answered invalid_grant), so that no copy of their tokens
// is used again. A grant is known by its record.Grant, which Save draws at
// random for each login, never by its token values: some servers hand a
// new login of the same user the very tokens of an earlier one (Spring
// Security OAuth2's default token services; the SMART reference launcher
// within one second), and that login must not inherit the end of the
// earlier grant. Only records saved before grants were named are known by
// their token values.
type ledger struct {
	mu     sync.Mutex
	ttl    time.Duration            // retention of the entries of ended grants
	grants map[string]*lineage      // record.Grant → the grant
	heads  map[fingerprint]*lineage // a grant's newest refresh token → the grant
	legacy map[fingerprint]*lineage // redeemed refresh token of a record without Grant → its grant
	all    []*lineage               // every grant, for the incremental sweep
	cursor int                      // where the sweep goes on

	anyRevoke atomic.Bool // set once a grant ended
	// ended holds the ended grants by record.Grant (string → *revocation),
	// for the per-request check in Refresher.load: a lock-free map look-up.
	ended sync.Map
	// revoked and revokedAccess are the ended tokens of records without a
	// Grant, by the fingerprint of their access and refresh tokens, and by
	// their access token (string → *revocation) for the per-request check.
	revoked       map[fingerprint]*revocation
	revokedAccess sync.Map
	nextSweep     time.Time // of ended, revoked and revokedAccess
}

// revocation is the end of a grant: why, and until when its copies are
// refused.
type revocation struct {
	until time.Time
	// reason is what a request holding a copy of the grant gets: ErrRevoked
	// after a Logout, the token endpoint's invalid_grant *TokenError.
	reason error
	// reported is set once OnReauth (and the reauth metric) heard of it:
	// once per grant, however many requests and copies meet its end.
	reported atomic.Bool
}

// lineage is one grant as this process has seen it: its newest token.
type lineage struct {
	grant   string        // record.Grant, or "" for a grant known only by legacy records
	head    *record       // the newest token
	headFP  fingerprint   // of head's refresh token, its key in heads
	legacy  []fingerprint // its keys in ledger.legacy
	expires time.Time
	ended   *revocation // nil while the grant lives
	slot    int         // index in ledger.all
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
		revoked: make(map[fingerprint]*revocation),
	}
}

// revoke records that the grant of recs ended for reason: no copy of its
// tokens may be used again until until, when no copy of the session may
// hold them any more (Refresher.retention; at least ttl from now). A grant
// that had already ended keeps its first reason. It returns the grant's
// revocation.
func (l *ledger) revoke(now, until time.Time, reason error, recs ...*record) *revocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.anyRevoke.Store(true)
	until = maxTime(until, now.Add(l.ttl))
	rv := &revocation{until: until, reason: reason}
	for _, rec := range recs {
		if old := l.endedRecord(rec, now); old != nil {
			rv = old
			break
		}
	}
	rv.until = maxTime(rv.until, until)
	for _, rec := range recs {
		t := &rec.Token
		if rec.Grant != "" {
			l.ended.Store(rec.Grant, rv)
			if lin := l.grants[rec.Grant]; lin != nil {
				lin.ended = rv
				lin.expires = maxTime(lin.expires, rv.until)
			}
		} else {
			if t.AccessToken != "" {
				l.revokedAccess.Store(t.AccessToken, rv)
			}
			for _, s := range []string{t.AccessToken, t.RefreshToken} {
				if s != "" {
					l.revoked[fingerprintOf(s)] = rv
				}
			}
		}
		if t.RefreshToken == "" {
			continue
		}
		// The grant as known by the refresh token, if it is this grant.
		fp := fingerprintOf(t.RefreshToken)
		for _, lin := range []*lineage{l.heads[fp], l.legacy[fp]} {
			if lin != nil && (rec.Grant == "" || lin.grant == "" || lin.grant == rec.Grant) {
				lin.ended = rv
				lin.expires = maxTime(lin.expires, rv.until)
			}
		}
	}
	l.sweepRevoked(now)
	return rv
}

// endedLoad returns the end of rec's grant, if it ended, by the cheap
// look-up fit for every request: its Grant, or for a record without one its
// access token. endedRecord, which also knows the grant's older tokens,
// runs before each refresh. It costs nothing until a grant ended.
func (l *ledger) endedLoad(rec *record, now func() time.Time) *revocation {
	if !l.anyRevoke.Load() {
		return nil // no clock read either
	}
	var v any
	var ok bool
	if rec.Grant != "" {
		v, ok = l.ended.Load(rec.Grant)
	} else {
		v, ok = l.revokedAccess.Load(rec.Token.AccessToken)
	}
	if !ok {
		return nil
	}
	rv := v.(*revocation)
	if !now().Before(rv.until) {
		return nil
	}
	return rv
}

// isRevokedRecord returns the end of rec's grant, or nil while it lives:
// rec's grant ended, or, for a record saved before grants were named, one
// of its tokens or of its grant's.
func (l *ledger) isRevokedRecord(rec *record, now time.Time) *revocation {
	if !l.anyRevoke.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endedRecord(rec, now)
}

// endedRecord is isRevokedRecord; l.mu must be held.
func (l *ledger) endedRecord(rec *record, now time.Time) *revocation {
	live := func(rv *revocation) *revocation {
		if rv != nil && now.Before(rv.until) {
			return rv
		}
		return nil
	}
	if rec.Grant != "" {
		if v, ok := l.ended.Load(rec.Grant); ok {
			return live(v.(*revocation))
		}
		if lin := l.grants[rec.Grant]; lin != nil {
			return live(lin.ended)
		}
		return nil
	}
	t := &rec.Token
	if rv := live(l.revoked[fingerprintOf(t.AccessToken)]); rv != nil {
		return rv
	}
	if t.RefreshToken == "" {
		return nil
	}
	rt := fingerprintOf(t.RefreshToken)
	if rv := live(l.revoked[rt]); rv != nil {
		return rv
	}
	for _, lin := range []*lineage{l.heads[rt], l.legacy[rt]} {
		if lin != nil {
			if rv := live(lin.ended); rv != nil {
				return rv
			}
		}
	}
	return nil
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
		if lin != nil && lin.ended != nil && cur.Grant != "" && lin.grant != cur.Grant {
			// A grant that ended had a token of this value: a new login
			// handed the same values, not a copy of it.
			lin = nil
		}
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
	if h := l.heads[fp]; lin == nil && h != nil && h.ended == nil && (h.grant == "" || next.Grant == "" || h.grant == next.Grant) {
		lin = h // the grant as known by its head's refresh token
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

// sweepRevoked drops expired entries of ended grants, at most once per
// tenth of the ttl; it runs when a grant ends only.
func (l *ledger) sweepRevoked(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(l.ttl / 10)
	for fp, rv := range l.revoked {
		if !now.Before(rv.until) {
			delete(l.revoked, fp)
		}
	}
	for _, m := range []*sync.Map{&l.revokedAccess, &l.ended} {
		m.Range(func(k, rv any) bool {
			if !now.Before(rv.(*revocation).until) {
				m.Delete(k)
			}
			return true
		})
	}
}

// maxTime returns the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
