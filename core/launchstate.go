package core

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"hash/maphash"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// pendingLaunch is a launch under way: what the callback needs to finish
// it. It lives in the session, encoded as JSON text (a string survives
// every scs codec), under the Refresher's SessionKey + ".launches".
type pendingLaunch struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	Nonce    string `json:"n,omitempty"`
	Aud      string `json:"a"`
	ReturnTo string `json:"r,omitempty"`
	Expires  int64  `json:"e"` // Unix seconds
}

// pendingStore keeps the pending launches of each session.
//
// scs commits whole sessions and the last writer wins, so two launches of
// one session at the same moment (two tabs) could each write back a list
// without the other's state. Each update therefore merges the request's
// copy with the session as it is in the store now, under a lock per
// session, commits the change into the stored session, and writes the
// answer (when scs commits the request's own copy) before unlocking:
// concurrent launches in one process all keep their state.
type pendingStore struct {
	key   string
	seed  maphash.Seed
	once  sync.Once
	locks [64]sync.Mutex
}

func (s *pendingStore) lock(token string) *sync.Mutex {
	s.once.Do(func() { s.seed = maphash.MakeSeed() })
	return &s.locks[maphash.String(s.seed, token)%uint64(len(s.locks))]
}

// update applies fn to the session's pending launches, merged with the
// stored session's, and commits the result; then, still holding the
// session's lock, it runs then (if not nil), which writes the answer: scs
// commits the request's copy again when the answer starts, and that copy
// must not be older than another launch's commit.
func (s *pendingStore) update(ctx context.Context, l *Launcher, fn func([]pendingLaunch) []pendingLaunch, then func() error) error {
	sm := l.r.cfg.Sessions
	token := sm.Token(ctx)
	if token != "" {
		mu := s.lock(token)
		mu.Lock()
		defer mu.Unlock()
	}
	own := sm.GetString(ctx, s.key)
	list := decodePending(own)
	// The session as it is in the store now: a copy without ctx's values,
	// since scs's Load returns a context that already has a session as it
	// is. A session gone from the store (destroyed, expired) stays gone.
	var fresh context.Context
	if token != "" {
		if f, err := sm.Load(context.Background(), token); err == nil && sm.Token(f) != "" {
			fresh = f
			list = mergePending(list, decodePending(sm.GetString(f, s.key)))
		}
	}
	now := l.r.cfg.Now()
	kept := list[:0]
	for _, p := range list {
		// Expired launches stay for one more StateTTL, so that a late
		// callback is told it came too late; used ones go at once.
		if now.Before(time.Unix(p.Expires, 0).Add(l.cfg.StateTTL)) && !l.used.seen(p.State) {
			kept = append(kept, p)
		}
	}
	out := fn(kept)
	next := encodePending(out)
	set := func(ctx context.Context) {
		if next == "" {
			sm.Remove(ctx, s.key)
		} else {
			sm.Put(ctx, s.key, next)
		}
	}
	// A session gone from the store (renewed by a login that completed
	// meanwhile, destroyed by a logout) is not written back for a launch
	// taken out of it: LoadAndSave would commit the stale copy under its
	// old token and send the browser that cookie, logging the user out of
	// the session that replaced it. Only a new launch needs the copy.
	gone := token != "" && fresh == nil
	if next != own && (!gone || addsLaunch(out, decodePending(own))) {
		set(ctx) // committed by the request's own LoadAndSave
	}
	if fresh != nil && next != sm.GetString(fresh, s.key) {
		// Committed at once into the stored session, never this request's
		// copy, which may be older than other requests' writes.
		set(fresh)
		if err := l.r.commit(fresh); err != nil {
			return err
		}
	}
	if then != nil {
		return then()
	}
	return nil
}

// addsLaunch reports whether list has a launch that own lacks.
func addsLaunch(list, own []pendingLaunch) bool {
	for _, p := range list {
		if !slices.ContainsFunc(own, func(q pendingLaunch) bool { return q.State == p.State }) {
			return true
		}
	}
	return false
}

// mergePending returns a with the launches of b that a lacks, oldest
// first.
func mergePending(a, b []pendingLaunch) []pendingLaunch {
	out := append([]pendingLaunch(nil), a...)
	for _, p := range b {
		found := false
		for _, q := range a {
			if q.State == p.State {
				found = true
				break
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	// Oldest first: MaxPendingLaunches drops from the front.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Expires < out[j-1].Expires; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func decodePending(s string) []pendingLaunch {
	if s == "" {
		return nil
	}
	var list []pendingLaunch
	if json.Unmarshal([]byte(s), &list) != nil {
		return nil
	}
	return list
}

func encodePending(list []pendingLaunch) string {
	if len(list) == 0 {
		return ""
	}
	b, _ := json.Marshal(list)
	return string(b)
}

// usedStates remembers the states whose callback has been handled, until
// they expire, so that no state (and so no authorization code) is used
// twice, even when a stale session copy brings the pending launch back or
// two loads of the callback run at once.
type usedStates struct {
	mu     sync.Mutex
	states map[[32]byte]time.Time
	adds   int
}

// claim records state as used until until; false if it already was.
func (u *usedStates) claim(state string, until time.Time) bool {
	key := sha256.Sum256([]byte(state))
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.states[key]; ok {
		return false
	}
	if u.states == nil {
		u.states = map[[32]byte]time.Time{}
	}
	u.adds++
	if u.adds%256 == 0 {
		now := time.Now()
		for k, exp := range u.states {
			if now.After(exp) {
				delete(u.states, k)
			}
		}
	}
	// Kept a while past the launch's expiry, against clock differences.
	u.states[key] = until.Add(time.Hour)
	return true
}

func (u *usedStates) seen(state string) bool {
	key := sha256.Sum256([]byte(state))
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.states[key]
	return ok
}

// claimShared records at the Config.Coordinator, when there is one, that
// p's callback is being handled, so that a callback loaded twice on two
// replicas (a double click the load balancer splits) exchanges its code
// once. usedStates does this within one process; across replicas a
// request's copy of the session, loaded before another replica's callback
// took the launch out, still holds it. A state claimed already is
// stateUsed; a Coordinator failure is a *CoordinatorError (ErrTransient),
// and the code is not sent.
func (l *Launcher) claimShared(ctx context.Context, p pendingLaunch) error {
	c := l.r.cfg.Coordinator
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.r.cfg.RefreshTimeout)
	defer cancel()
	sum := sha256.Sum256([]byte(p.State))
	key := "smartrefresh:state:" + hex.EncodeToString(sum[:])
	unlock, err := c.Lock(ctx, "smartrefresh:lock:state:"+hex.EncodeToString(sum[:]))
	if err != nil {
		return &CoordinatorError{Op: "lock", Err: err}
	}
	defer unlock()
	_, used, err := c.Load(ctx, key)
	if err != nil {
		return &CoordinatorError{Op: "load", Err: err}
	}
	if used {
		return stateUsed()
	}
	// Kept a while past the launch's expiry, as usedStates does.
	ttl := max(time.Unix(p.Expires, 0).Add(time.Hour).Sub(l.r.cfg.Now()), time.Minute)
	if err := c.Store(ctx, key, []byte{1}, ttl); err != nil {
		return &CoordinatorError{Op: "store", Err: err}
	}
	return nil
}

func equalSecret(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// maxReturnTo bounds a return_to.
const maxReturnTo = 2048

// SafeReturnTo reports whether s is a path on this site that a redirect may
// send the browser to: it starts with one "/" (not "//", not "/\"), has no
// scheme, host, backslash, control character or space, and stays so once
// percent-decoded (no whitespace or control character of any kind). Everything else could send the browser to another site
// (an open redirect).
func SafeReturnTo(s string) bool {
	if s == "" || len(s) > maxReturnTo || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	if len(s) > 1 && s[1] == '/' {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	// Some servers and proxies decode the path before they redirect; a
	// browser then drops tabs and newlines ("/%09/evil" becomes "//evil"),
	// and may trim or ignore other whitespace: none of any kind (spaces,
	// no-break and line separators, zero-width and other format
	// characters) nor any control character may be there once decoded.
	p := u.Path
	if strings.ContainsFunc(p, func(c rune) bool {
		return unicode.IsSpace(c) || unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == utf8.RuneError
	}) {
		return false
	}
	return !strings.HasPrefix(p, "//") && !strings.ContainsAny(p, "\\") && strings.HasPrefix(p, "/")
}
