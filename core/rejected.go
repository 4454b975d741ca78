package core

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TokenRejectedCoolDown is how long a token obtained by a refresh that a
// 401 of the FHIR server triggered stays on probation: a 401 to it within
// that time means the FHIR server rejects fresh tokens (a revoked consent,
// scopes it does not accept, a misconfigured resource server), and refreshing
// again would only get the same answer. The request then fails with a
// *TokenRejectedError instead of refreshing; after the cool-down a 401 may
// trigger one refresh again. So a session makes at most one 401-triggered
// refresh per cool-down, however many requests the FHIR server rejects.
const TokenRejectedCoolDown = time.Minute

// ErrTokenRejected is matched (errors.Is) by every *TokenRejectedError.
var ErrTokenRejected = errors.New("smartrefresh: the FHIR server rejects fresh tokens")

// TokenRejectedError is returned by the Refresher's Client when the FHIR
// server answered 401 to a token that a 401-triggered refresh obtained
// less than TokenRejectedCoolDown ago. No refresh is made: the token endpoint
// issues tokens the FHIR server does not accept, so the cause lies between
// the two (the grant's scopes, a consent revoked at the FHIR server, a
// FHIR server trusting another authorization server), and the user may
// have to launch again. The stored token is kept.
//
// It matches ErrTokenRejected only, none of the refresh error classes: the
// token endpoint did not fail.
type TokenRejectedError struct {
	// Code is the error code of the FHIR server's WWW-Authenticate header
	// (RFC 6750: invalid_token, insufficient_scope), when it sent one.
	Code string
	// CoolDown is TokenRejectedCoolDown.
	CoolDown time.Duration
	// Since is when the rejected token was obtained.
	Since time.Time
}

func (e *TokenRejectedError) Error() string {
	s := "smartrefresh: the FHIR server rejects fresh tokens: it answered 401"
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s + " to a token refreshed after its previous 401; not refreshing again within " +
		e.CoolDown.String() + " (check the grant's scopes and the FHIR server's trust in the token endpoint, or launch again)"
}

// Is makes a TokenRejectedError match ErrTokenRejected.
func (e *TokenRejectedError) Is(target error) bool { return target == ErrTokenRejected }

// probation remembers the access tokens obtained by 401-triggered refreshes
// for TokenRejectedCoolDown. Its entries live that long only, so it holds
// at most one entry per session per cool-down.
//
// A token on probation that the FHIR server accepts leaves it: a later 401
// to it means the server revoked a token it had accepted, which deserves
// its one refresh. But a token whose replay, the request that got the 401
// sent again with it, was rejected too stays on probation for the whole
// cool-down, whatever other requests with it get: a server (or one node
// behind round-robin, or a gateway in front of one resource) that rejects
// it on one path and accepts it on another would otherwise have one
// refresh per request pair.
type probation struct {
	mu        sync.Mutex
	since     map[fingerprint]probationEntry // access token → its entry
	n         atomic.Int64                   // len(since)
	nextSweep time.Time
}

type probationEntry struct {
	since    time.Time // when the token was obtained
	rejected bool      // its replay was rejected: acceptance does not clear it
}

// add puts at, obtained at since, on probation.
func (p *probation) add(at string, since, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.since == nil {
		p.since = make(map[fingerprint]probationEntry)
	}
	if now.After(p.nextSweep) {
		for k, e := range p.since {
			if now.Sub(e.since) >= TokenRejectedCoolDown {
				delete(p.since, k)
			}
		}
		p.n.Store(int64(len(p.since)))
		p.nextSweep = now.Add(TokenRejectedCoolDown)
	}
	p.since[fingerprintOf(at)] = probationEntry{since: since}
	p.n.Store(int64(len(p.since)))
}

// replayRejected records that the FHIR server rejected at, on probation,
// when the request that triggered its refresh was sent again with it: at
// stays on probation for the rest of its cool-down.
func (p *probation) replayRejected(at string) {
	if p.n.Load() == 0 {
		return
	}
	fp := fingerprintOf(at)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.since[fp]; ok {
		e.rejected = true
		p.since[fp] = e
	}
}

// accepted takes at off probation: the FHIR server accepted it. It costs
// one atomic load while nothing is on probation.
func (p *probation) accepted(at string) {
	if p.n.Load() == 0 {
		return
	}
	fp := fingerprintOf(at)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.since[fp]; ok && !e.rejected {
		delete(p.since, fp)
		p.n.Store(int64(len(p.since)))
	}
}

// check returns when at was obtained if it is still on probation.
func (p *probation) check(at string, now time.Time) (time.Time, bool) {
	fp := fingerprintOf(at)
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.since[fp]
	return e.since, ok && now.Sub(e.since) < TokenRejectedCoolDown
}

// unrenewable remembers, for access tokens without a refresh token that the
// FHIR server rejected (401) while they were still valid, since when it has
// rejected them without accepting them in between. Such a 401 is passed
// through and the session kept: one rejected request (a resource behind
// another gateway, one node out of step) must not log the user out. When
// the FHIR server has rejected every request for TokenRejectedCoolDown, the
// token is dead and the session ends (ErrNoRefreshToken). Entries go when
// the token is accepted, or after the cool-down, so there is at most one
// per session.
type unrenewable struct {
	mu        sync.Mutex
	since     map[fingerprint]time.Time // access token → its first 401 since it was last accepted
	n         atomic.Int64              // len(since)
	nextSweep time.Time
}

// rejected records a 401 to at at now and returns since when at has been
// rejected without being accepted.
func (u *unrenewable) rejected(at string, now time.Time) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.since == nil {
		u.since = make(map[fingerprint]time.Time)
	}
	if now.After(u.nextSweep) {
		for k, t := range u.since {
			if now.Sub(t) >= 2*TokenRejectedCoolDown {
				delete(u.since, k)
			}
		}
		u.nextSweep = now.Add(TokenRejectedCoolDown)
	}
	fp := fingerprintOf(at)
	since, ok := u.since[fp]
	if !ok {
		since = now
		u.since[fp] = now
	}
	u.n.Store(int64(len(u.since)))
	return since
}

// accepted forgets at's rejections: the FHIR server accepted it. It costs
// one atomic load while there are none.
func (u *unrenewable) accepted(at string) {
	if u.n.Load() == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.since, fingerprintOf(at))
	u.n.Store(int64(len(u.since)))
}

// errPassThrough401 is refreshAfter401's answer for a 401 that goes back to
// the caller as it came, the session kept (see unrenewable).
var errPassThrough401 = errors.New("smartrefresh: 401 passed through")

// bearerErrorCode returns the error code of a WWW-Authenticate Bearer
// challenge (RFC 6750 section 3), if it is a short token of the RFC's
// character set; anything else is dropped rather than echoed.
func bearerErrorCode(challenge string) string {
	_, params, ok := strings.Cut(challenge, " ")
	if !ok {
		return ""
	}
	for p := range strings.SplitSeq(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(k, "error") {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		if len(v) == 0 || len(v) > 64 {
			return ""
		}
		for _, c := range v {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return ""
			}
		}
		return v
	}
	return ""
}
