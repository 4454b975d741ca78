package core

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"hash/maphash"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
)

// A session holds up to Config.MaxLaunches completed launches, each its
// own login with its own token, grant and identity, named by a launch id
// (rand.Text: 130 random bits in base32, URL-safe). The session value
// under SessionKey is then the launch list, a versioned string like every
// session value:
//
//	smartrefresh.launches.v1:[{"id":…,"used":…,"identity":{…},"token":"smartrefresh.record.v2:…"},…]
//
// oldest first, each launch's token in the forms of sessionvalue.go
// (sealed with EncryptionKeys). One value keeps the hot path at one
// session read, whatever the number of launches. A session whose value
// under SessionKey is a token (every form before launches, and what Save
// stores) holds one launch without an id, its identity under SessionKey +
// ".identity".
//
// Each launch is refreshed on its own: the refresh algorithm (refresher.go)
// works on one slot, and every write of it changes only that launch's
// token, in a fresh read of the session.
const launchesPrefix = "smartrefresh.launches.v1:"

// launchTouch is how often a launch in use has its last use written into
// the session, for the least-recently-used choice of MaxLaunches.
const launchTouch = 5 * time.Minute

// launchEntry is one completed launch in the session's index.
type launchEntry struct {
	ID string `json:"id"`
	// Used is when the launch was completed or last used (Unix seconds,
	// within launchTouch).
	Used     int64    `json:"used"`
	Identity identity `json:"identity"`
	// Token is the launch's token as a session value (sessionvalue.go).
	Token string `json:"token"`

	// rec, or err, is Token decoded; att is what Attach puts in a
	// request's context for rec (context.go).
	rec *record
	err error
	att *attachment
}

// launchSet is a decoded launch index. Like records, it is shared between
// requests (valueCache) and never modified once made.
type launchSet struct {
	list []launchEntry // oldest first: the last is the most recent launch
}

// find returns the launch named id, or the most recent one for "", or nil.
func (s *launchSet) find(id string) *launchEntry {
	if id == "" {
		if len(s.list) == 0 {
			return nil
		}
		return &s.list[len(s.list)-1]
	}
	for i := range s.list {
		if s.list[i].ID == id {
			return &s.list[i]
		}
	}
	return nil
}

// slot is one launch's place in the session.
type slot struct {
	id    string       // "" for the one launch of a session in the form before launches
	entry *launchEntry // its entry in the launch list; nil without an id
}

// newLaunchID returns a fresh launch id: 130 random bits, URL-safe.
func newLaunchID() string { return rand.Text() }

// validLaunchID reports whether id has the shape of a launch id.
func validLaunchID(id string) bool {
	if len(id) < 22 || len(id) > maxLaunchID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isLaunches reports whether v is a launch index.
func isLaunches(v any) bool {
	s, ok := v.(string)
	return ok && strings.HasPrefix(s, launchesPrefix)
}

// launchSetOf decodes a launch index, remembering it (valueCache).
func (r *Refresher) launchSetOf(v string) (*launchSet, error) {
	if e := r.values.get(v); e != nil && e.set != nil {
		return e.set, nil
	}
	var list []launchEntry
	if err := json.Unmarshal([]byte(v[len(launchesPrefix):]), &list); err != nil {
		return nil, errNotAToken
	}
	for i := range list {
		e := &list[i]
		if !validLaunchID(e.ID) || slices.ContainsFunc(list[:i], func(o launchEntry) bool { return o.ID == e.ID }) {
			return nil, errNotAToken
		}
		if e.rec, e.err = r.decodeSessionRecord(e.Token); e.err == nil {
			e.att = &attachment{tok: &e.rec.Token, launch: e.ID}
		}
	}
	set := &launchSet{list: list}
	r.values.add(&valueEntry{value: v, set: set})
	return set, nil
}

// encodeLaunches returns the session value of list, "" for none.
func encodeLaunches(list []launchEntry) string {
	if len(list) == 0 {
		return ""
	}
	b, _ := json.Marshal(list)
	return launchesPrefix + string(b)
}

// pick returns the slot of the launch named name in the session value v
// (SessionKey's), and, for a session of one launch without an id, its
// token value (a launch of the list has its token decoded in its entry).
func (r *Refresher) pick(ctx context.Context, v any, name string) (slot, any, error) {
	gone := ErrNoToken
	if name != "" {
		gone = ErrLaunchGone
	}
	if v == nil {
		return slot{}, nil, gone
	}
	if s, ok := v.(string); ok && strings.HasPrefix(s, launchesPrefix) {
		set, err := r.launchSetOf(s)
		if err != nil {
			r.cfg.Logger.WarnContext(ctx, "smartrefresh: the session's launch index cannot be read; launch again")
			return slot{}, nil, ErrCorruptSession
		}
		e := set.find(name)
		if e == nil {
			return slot{}, nil, gone
		}
		return slot{id: e.ID, entry: e}, nil, nil // its token: e.rec (not boxed: the hot path allocates nothing)
	}
	if name != "" {
		return slot{}, nil, ErrLaunchGone // a session of one launch without an id
	}
	return slot{}, v, nil
}

// slotValue returns the token value of launch s in the session of ctx
// (typically a fresh read of the store), and false when the session no
// longer holds that launch: another launch index, or a session of one
// launch without an id where s has one (or the reverse).
func (r *Refresher) slotValue(ctx context.Context, s slot) (any, bool) {
	v := r.cfg.Sessions.Get(ctx, r.cfg.SessionKey)
	if s.id == "" {
		return v, !isLaunches(v)
	}
	if !isLaunches(v) {
		return nil, false
	}
	set, err := r.launchSetOf(v.(string))
	if err != nil {
		return nil, false
	}
	e := set.find(s.id)
	if e == nil {
		return nil, false
	}
	return e.Token, true
}

// putSlot puts v as the token value of launch s into the session of ctx,
// without a commit, if the session holds that launch.
func (r *Refresher) putSlot(ctx context.Context, s slot, v string) {
	if s.id == "" {
		r.cfg.Sessions.Put(ctx, r.cfg.SessionKey, v)
		return
	}
	r.editLaunches(ctx, func(list []launchEntry) []launchEntry {
		for i := range list {
			if list[i].ID == s.id {
				list[i].Token = v
			}
		}
		return list
	})
}

// editLaunches replaces the launch list of the session of ctx by what edit
// makes of a copy of it, without a commit. A session without a launch list
// is left alone.
func (r *Refresher) editLaunches(ctx context.Context, edit func([]launchEntry) []launchEntry) bool {
	sm := r.cfg.Sessions
	v := sm.Get(ctx, r.cfg.SessionKey)
	if !isLaunches(v) {
		return false
	}
	set, err := r.launchSetOf(v.(string))
	if err != nil {
		return false
	}
	if next := encodeLaunches(edit(slices.Clone(set.list))); next == "" {
		sm.Remove(ctx, r.cfg.SessionKey)
	} else {
		sm.Put(ctx, r.cfg.SessionKey, next)
	}
	return true
}

// launchesOf returns every launch of the session of ctx, with its token value.
func (r *Refresher) launchesOf(ctx context.Context) ([]slot, []any) {
	v := r.cfg.Sessions.Get(ctx, r.cfg.SessionKey)
	if v == nil {
		return nil, nil
	}
	if !isLaunches(v) {
		return []slot{{}}, []any{v}
	}
	set, err := r.launchSetOf(v.(string))
	if err != nil {
		return nil, nil
	}
	var (
		out  []slot
		vals []any
	)
	for i := range set.list {
		e := &set.list[i]
		out = append(out, slot{id: e.ID, entry: e})
		vals = append(vals, e.Token)
	}
	return out, vals
}

// dropSlot removes launch s (its token, and its identity) from the
// session of ctx, without a commit.
func (r *Refresher) dropSlot(ctx context.Context, s slot) {
	sm := r.cfg.Sessions
	if s.id == "" {
		sm.Remove(ctx, r.cfg.SessionKey)
		sm.Remove(ctx, r.identityKey())
		return
	}
	r.editLaunches(ctx, func(list []launchEntry) []launchEntry {
		return slices.DeleteFunc(list, func(e launchEntry) bool { return e.ID == s.id })
	})
}

// touch writes into the session, at most once per launchTouch and launch
// in this process, that the launch of s is in use, so that MaxLaunches
// drops the least recently used launch.
func (r *Refresher) touch(ctx context.Context, s slot) {
	now := r.cfg.Now().Unix()
	if s.entry == nil || now-s.entry.Used < int64(launchTouch/time.Second) || !r.touches.claim(s.id, now) {
		return
	}
	used := func(c context.Context) bool {
		found := false
		r.editLaunches(c, func(list []launchEntry) []launchEntry {
			for i := range list {
				if list[i].ID == s.id {
					list[i].Used, found = now, true
				}
			}
			return list
		})
		return found
	}
	if r.cfg.Sessions.Status(ctx) == scs.Modified {
		used(ctx) // the request's commit writes it
		return
	}
	r.inStore(ctx, used)
}

// touchTable remembers which launches this process touched lately, so
// that a burst of requests of one launch writes its use once. Like
// valueCache, it is a direct-mapped table of atomic pointers.
type touchTable struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[touchEntry]
}

type touchEntry struct {
	id string
	at int64
}

// claim reports whether the caller is to touch launch id at now.
func (t *touchTable) claim(id string, now int64) bool {
	p := &t.slots[maphash.String(t.seed, id)%uint64(len(t.slots))]
	old := p.Load()
	if old != nil && old.id == id && now-old.at < int64(launchTouch/time.Second) {
		return false
	}
	return p.CompareAndSwap(old, &touchEntry{id: id, at: now})
}

// twin reports whether a and b are launches of the same user for the same
// patient at the same FHIR server: a new one may replace the older.
func twin(a, b identity, pa, pb string) bool {
	userA, userB := a.FHIRUser+"|"+a.Subject, b.FHIRUser+"|"+b.Subject
	return pa != "" && pa == pb && a.Aud == b.Aud && userA != "|" && userA == userB
}

// otherUser reports whether a and b are logins of two different users at
// the same FHIR server, as far as their validated id_tokens say (both must
// name a user).
func otherUser(a, b identity) bool {
	return a.Aud == b.Aud && a.FHIRUser+a.Subject != "" && b.FHIRUser+b.Subject != "" &&
		(a.FHIRUser != b.FHIRUser || a.Subject != b.Subject)
}

// dropped is a launch a new login or Save took out of the session: its
// grant is to be revoked once the session is committed.
type dropped struct {
	rec *record
	why string
}

// addLaunch stores tok as a new launch of the session of ctx, with the
// identity its Launcher established, and commits the session under a new
// session token (as Save does). The launches the session holds in the
// store, as it is now, are kept, but for an older twin of the new launch
// (same user and patient) and, beyond MaxLaunches, the least recently
// used ones: those are dropped and their grants revoked. It returns the
// new launch's id.
func (r *Refresher) addLaunch(ctx context.Context, tok *Token, id *identity) (string, error) {
	sm := r.cfg.Sessions
	// The launches as they are in the store now: the request's copy may
	// hold older tokens of them, which its commit would write back.
	base := ctx
	if token := sm.Token(ctx); token != "" {
		if fresh, err := sm.Load(context.Background(), token); err == nil && sm.Token(fresh) != "" {
			base = fresh
		}
	}
	slots, vals := r.launchesOf(base)
	now := r.cfg.Now()
	type kept struct {
		e   launchEntry
		rec *record
	}
	var (
		keep []kept
		drop []dropped
	)
	for i, s := range slots {
		tv, _ := vals[i].(string)
		rec, err := r.decodeSessionRecord(vals[i])
		if err != nil && !errors.Is(err, ErrTransient) {
			continue // not a token: nothing to keep or revoke
		}
		if tv == "" && rec != nil {
			// A *record or sealed []byte of the versions before the text
			// forms: the launch list holds it as text.
			if tv, err = r.sessionValue(rec); err != nil {
				return "", err
			}
		}
		if tv == "" {
			continue // unreadable here and not text: cannot be carried
		}
		var e launchEntry
		if s.entry != nil {
			e = *s.entry
		} else {
			// The launch without an id gets one.
			e = launchEntry{ID: newLaunchID(), Used: now.Unix(), Identity: r.identityOf(base), Token: tv}
		}
		if rec != nil && twin(e.Identity, *id, rec.Token.Patient, tok.Patient) {
			drop = append(drop, dropped{rec, "replaced by a new launch for the same user and patient"})
			continue
		}
		if rec != nil && otherUser(e.Identity, *id) {
			// A session holds one user's launches: the next user at a
			// shared workstation, or a victim logging in to a session an
			// attacker planted, must not reach the other's launches.
			drop = append(drop, dropped{rec, "ended by another user's login"})
			continue
		}
		keep = append(keep, kept{e, rec})
	}
	for len(keep) >= r.cfg.MaxLaunches {
		lru := 0
		for i := range keep {
			if keep[i].e.Used < keep[lru].e.Used {
				lru = i
			}
		}
		if keep[lru].rec != nil {
			drop = append(drop, dropped{keep[lru].rec, "dropped for a newer launch (MaxLaunches)"})
		}
		keep = slices.Delete(keep, lru, lru+1)
	}
	rec := &record{Token: *tok, Obtained: now, Grant: newGrantID()}
	v, err := r.sessionValue(rec)
	if err != nil {
		return "", err
	}
	// Every login renews the session token, the second launch of a session
	// too: a session cookie an attacker planted may already hold the
	// attacker's own launch, and the victim's launch must not land in a
	// session whose token the attacker knows.
	if err := sm.RenewToken(ctx); err != nil {
		return "", err
	}
	list := make([]launchEntry, 0, len(keep)+1)
	for _, k := range keep {
		list = append(list, k.e)
	}
	launch := launchEntry{ID: newLaunchID(), Used: now.Unix(), Identity: *id, Token: v}
	list = append(list, launch)
	sm.Remove(ctx, r.identityKey())
	sm.Put(ctx, r.cfg.SessionKey, encodeLaunches(list))
	if err := r.commit(ctx); err != nil {
		return "", err
	}
	r.revokeDropped(ctx, drop, tok)
	return launch.ID, nil
}

// revokeDropped revokes the grants of launches taken out of a session for
// the login tok, on a context detached from ctx: Logout's guarantees, for
// each. A launch that shares a token value with tok is left alone, as
// revokeReplaced does: a server that hands a new login the tokens of an
// earlier one would have its revocation end the new login too.
func (r *Refresher) revokeDropped(ctx context.Context, drop []dropped, tok *Token) {
	for _, d := range drop {
		if sharesToken(r, d.rec, tok) {
			continue
		}
		if err := r.revokeGrant(context.WithoutCancel(ctx), d.rec); err != nil {
			r.cfg.Logger.WarnContext(ctx, "smartrefresh: a launch was "+d.why+", but revoking its grant failed", "error", err)
		} else {
			r.cfg.Logger.DebugContext(ctx, "smartrefresh: a launch was "+d.why+"; its grant is revoked")
		}
	}
}

// sharesToken reports whether old, or the newest token of its grant known
// here, has tok's access token or refresh token.
func sharesToken(r *Refresher, old *record, tok *Token) bool {
	for _, o := range []*record{old, r.newestKnown(old)} {
		if o.Token.AccessToken == tok.AccessToken || o.Token.RefreshToken != "" && o.Token.RefreshToken == tok.RefreshToken {
			return true
		}
	}
	return false
}
