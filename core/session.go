package core

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/alexedwards/scs/v2"
)

// record is a session's token and when it was obtained. The session holds
// it as text (sessionvalue.go); versions before stored the *record itself,
// under the gob name below, which stays registered so that those sessions
// still decode.
type record struct {
	Token Token
	// Obtained is when the access token was issued (as seen here); with
	// Token.Expiry it gives the token's lifetime.
	Obtained time.Time
	// Refreshes counts the refreshes since the token was saved.
	Refreshes int
	// Grant names the grant: Save draws it at random, and every token
	// refreshed from the saved one keeps it. With Refreshes, it tells the
	// ledger that a session copy is stale (ledger.go). Empty in records
	// saved before it existed.
	Grant string
}

func init() {
	gob.RegisterName("smartrefresh.record.v1", &record{})
	// Token.Extra holds decoded JSON; gob needs its composite types
	// registered to carry them inside interface values.
	gob.Register(map[string]any{})
	gob.Register([]any{})
}

// get returns the session's value under the session key. ok is false when
// ctx carries no session of the configured manager (scs would panic).
func (r *Refresher) get(ctx context.Context) (v any, ok bool) {
	defer func() {
		if recover() != nil {
			v, ok = nil, false
		}
	}()
	return r.cfg.Sessions.Get(ctx, r.cfg.SessionKey), true
}

// noSession returns the error for a ctx without a session: ErrNoSession,
// or a ginContextError when ctx is a *gin.Context. core does not import
// gin; the type is recognised by name.
func noSession(ctx context.Context) error {
	if t := reflect.TypeOf(ctx); t != nil && t.Kind() == reflect.Pointer &&
		t.Elem().Name() == "Context" && t.Elem().PkgPath() == "github.com/gin-gonic/gin" {
		return ginContextError{}
	}
	return ErrNoSession
}

// misconfigHint says how to fix a context without a session.
func misconfigHint(ctx context.Context, err error) string {
	var g ginContextError
	if errors.As(err, &g) {
		return "a *gin.Context was passed as the context: pass c.Request.Context() (or set the engine's ContextWithFallback)"
	}
	return fmt.Sprintf("the context (a %T) carries no session: pass the request's context (r.Context(); "+
		"c.Request().Context() in Echo; c.Request.Context() in Gin) of a handler inside the session manager's LoadAndSave", ctx)
}

// ginContextError is ErrNoSession for a *gin.Context passed as the context
// on an engine whose ContextWithFallback is off: LoadAndSave may well be
// there, but such a context hides the values of the request's context.
type ginContextError struct{}

func (ginContextError) Error() string {
	return "smartrefresh: misconfigured: no session in context: it is a *gin.Context, whose Value does not reach " +
		"the request's context while the engine's ContextWithFallback is false; pass c.Request.Context(), " +
		"or set ContextWithFallback = true"
}

// Is makes a ginContextError match ErrNoSession and ErrMisconfigured.
func (ginContextError) Is(target error) bool {
	return target == ErrNoSession || target == ErrMisconfigured
}

// load returns the token record of the launch named name (the most recent
// one for ""), and that launch's slot.
func (r *Refresher) load(ctx context.Context, name string) (*record, slot, error) {
	v, ok := r.get(ctx)
	if !ok {
		// A programming error the app's answer (a 500) does not explain:
		// the log says what is wrong and how to fix it.
		err := noSession(ctx)
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: "+misconfigHint(ctx, err), "error", err)
		return nil, slot{}, err
	}
	s, v, err := r.pick(ctx, v, name)
	if err != nil {
		return nil, s, err
	}
	var rec *record
	if s.entry != nil {
		rec, err = s.entry.rec, s.entry.err // decoded with the launch list
	} else {
		rec, err = r.decodeSessionRecord(v)
	}
	if errors.Is(err, ErrTransient) {
		// Possibly a good token that another replica can read (a newer
		// key or format during a rolling deploy): leave it.
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: leaving a session token this process cannot read", "error", err)
		return nil, s, err
	}
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: removing a session value that is not a token")
		r.reauth(ctx, ErrCorruptSession)
		r.remove(ctx, s)
		return nil, s, ErrCorruptSession
	}
	if rv := r.ledger.endedLoad(rec, r.cfg.Now); rv != nil {
		// A copy of a grant that ended (Logout, invalid_grant): a stale
		// session copy written back, or a refresh stored after the end.
		r.reauthOnce(ctx, rv)
		r.remove(ctx, s)
		return nil, s, rv.reason
	}
	return rec, s, nil
}

// store puts rec into the session of ctx and commits the session at once.
// Only Save, the app's login, commits the request's own copy this way: it
// is the copy the app has just renewed. Every other write of the Refresher
// goes through persist and adopt.
func (r *Refresher) store(ctx context.Context, s slot, rec *record) error {
	if err := r.put(ctx, s, rec); err != nil {
		return err
	}
	return r.commit(ctx)
}

// put puts rec into the session of ctx as launch s's token, without
// committing (Put marks the session modified).
func (r *Refresher) put(ctx context.Context, s slot, rec *record) error {
	v, err := r.sessionValue(rec)
	if err != nil {
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: encoding the token for the session failed", "error", err)
		return err
	}
	r.putSlot(ctx, s, v)
	return nil
}

// The Refresher never commits a request's copy of the session (but in
// Save and a Launcher's login): a copy loaded before other requests wrote
// the session, or before one destroyed it (a logout), would undo what they
// did. What a refresh must persist goes into the session as it is in the
// store now, read afresh (persist, remove); the request's own copy gets
// the same change without a commit (adopt, forget), so that its
// LoadAndSave commits it, or not, exactly as it would have without the
// Refresher. Each of these writes changes one launch's token (slot s), and
// only while the session still holds that launch: refreshing one launch
// never writes another's token.

// persist stores rec as launch s's token in the session of ctx as it is
// now in the store, read afresh, whatever became of the request that
// carries ctx, if the store still holds an older token of rec's grant
// there (see settle). A session that is gone from the store stays gone,
// and a launch that holds no token (logged out) or another grant's (logged
// in again) is left alone.
func (r *Refresher) persist(ctx context.Context, s slot, rec *record) {
	if r.cfg.Sessions.Token(ctx) == "" {
		// A session that was never committed: only this copy has it.
		r.store(context.WithoutCancel(ctx), s, rec)
		return
	}
	r.settle(ctx, s, rec)
}

// settle brings launch s's token in the session of ctx, as it is in the
// store now, up to date with what this process knows: a token whose
// refresh token was redeemed is replaced by its grant's newest token
// (next, when it is the newer token of a grant that did not rotate its
// refresh token), and a token of a grant Logout revoked is removed.
func (r *Refresher) settle(ctx context.Context, s slot, next *record) error {
	return r.inStore(ctx, func(fresh context.Context) bool { return r.settleSlot(fresh, s, next) })
}

// settleAll is settle for every launch of the session.
func (r *Refresher) settleAll(ctx context.Context) error {
	return r.inStore(ctx, func(fresh context.Context) bool {
		slots, _ := r.launchesOf(fresh)
		changed := false
		for _, s := range slots {
			changed = r.settleSlot(fresh, s, nil) || changed
		}
		return changed
	})
}

// settleSlot is settle's change to the session of fresh.
func (r *Refresher) settleSlot(fresh context.Context, s slot, next *record) bool {
	v, ok := r.slotValue(fresh, s)
	if !ok {
		return false // the launch is no longer in the session
	}
	cur, err := r.decodeSessionRecord(v)
	if err != nil {
		return false // no token (a Logout removed it), or not ours to judge
	}
	now := r.cfg.Now()
	if r.ledger.isRevokedRecord(cur, now) != nil {
		r.dropSlot(fresh, s)
		return true
	}
	want := r.newestKnown(cur)
	if want == cur && next != nil && next.Token.AccessToken != cur.Token.AccessToken &&
		cur.Token.RefreshToken != "" && next.Token.RefreshToken == cur.Token.RefreshToken &&
		cur.Obtained.Before(next.Obtained) {
		want = next // not rotated: the same refresh token, a newer access token
	}
	if want == cur || r.ledger.isRevokedRecord(want, now) != nil {
		return false
	}
	return r.put(fresh, s, inLaunch(cur, want)) == nil
}

// remove removes launch s, whose token the request's copy of the session
// holds: from the session as it is now in the store, read afresh, if the
// store still holds that token or another of its grant there (an
// undecodable value, if the copy's is one too), and from the copy without
// a commit (forget). A session that is gone from the store stays gone.
func (r *Refresher) remove(ctx context.Context, s slot) error {
	own, _ := r.slotValue(ctx, s)
	err := r.removeFromStore(ctx, s, own)
	r.forget(ctx, s)
	return err
}

// removeForLogout is remove for Logout, the app's own request to end the
// authorization: the request's copy loses the launch as if the app had
// removed it itself (so it is modified, and LoadAndSave commits it, unless
// the app destroys the session). own is the launch's token value where
// Logout found it.
func (r *Refresher) removeForLogout(ctx context.Context, s slot, own any) error {
	err := r.removeFromStore(ctx, s, own)
	if r.cfg.Sessions.Status(ctx) != scs.Destroyed {
		if _, ok := r.slotValue(ctx, s); ok {
			r.dropSlot(ctx, s)
		}
	}
	return err
}

// removeFromStore is remove's change to the session in the store; own is
// the token value of launch s that is being removed.
func (r *Refresher) removeFromStore(ctx context.Context, s slot, own any) error {
	gone, err := r.decodeSessionRecord(own)
	isToken := err == nil
	return r.inStore(ctx, func(fresh context.Context) bool {
		v, ok := r.slotValue(fresh, s)
		if !ok || v == nil {
			return false
		}
		cur, err := r.decodeSessionRecord(v)
		if errors.Is(err, ErrTransient) || isToken && (err != nil || !r.sameGrant(cur, gone)) || !isToken && err == nil {
			return false // logged in again meanwhile, or not ours to judge
		}
		r.dropSlot(fresh, s)
		return true
	})
}

// inStore loads the session of ctx as it is now in the store, lets edit
// change it, and commits it if edit says it did. A session that is gone
// from the store (destroyed, expired) stays gone. It runs whatever became
// of the request that carries ctx.
//
// It is a read-modify-write without a lock, as every scs commit is: a
// request that commits between its load and its commit (a store round trip
// apart) is overwritten, as scs's last writer always wins.
func (r *Refresher) inStore(ctx context.Context, edit func(fresh context.Context) bool) error {
	token := r.cfg.Sessions.Token(ctx)
	if token == "" {
		return nil // never committed: the store has nothing of it
	}
	// A context without ctx's values: scs's Load returns a context that
	// already carries a session unchanged.
	fresh, err := r.cfg.Sessions.Load(context.Background(), token)
	if err != nil {
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: loading the session to store the token failed", "error", err)
		return err
	}
	if r.cfg.Sessions.Token(fresh) == "" {
		return nil // destroyed or expired meanwhile
	}
	if !edit(fresh) {
		return nil
	}
	return r.commit(fresh)
}

// adopt gives the request's own copy of the session rec as launch s's
// token, without a commit. A copy that LoadAndSave will commit anyway
// (modified by the app, or by scs when IdleTimeout is set) gets rec put
// into it, so that its commit writes rec, not the token it loaded. An
// unmodified copy is left as it is, so that LoadAndSave does not commit it
// (a stale copy would undo other requests' writes, or bring back a
// destroyed session): the store already has rec (persist), and the
// Refresher resolves the copy's older token to rec through its ledger for
// the rest of the request. Should the app modify the copy after all,
// settle puts rec back in the store once the request is over
// (settleAfter).
func (r *Refresher) adopt(ctx context.Context, s slot, rec *record) {
	switch r.cfg.Sessions.Status(ctx) {
	case scs.Modified:
		if _, ok := r.slotValue(ctx, s); ok {
			r.put(ctx, s, rec)
		}
	case scs.Unmodified:
		r.settleAfter(ctx)
	}
}

// takeOver replaces next's stale predecessor, which the request's copy of
// the session holds as launch s's token, by next: in the copy (adopt), and
// in the store, which may hold the stale token too (a stale copy committed
// by its request), unless the request's own commit will write next anyway.
func (r *Refresher) takeOver(ctx context.Context, s slot, next *record) {
	if r.cfg.Sessions.Status(ctx) != scs.Modified {
		r.settle(ctx, s, next)
	}
	r.adopt(ctx, s, next)
}

// forget removes launch s from the request's own copy of the session,
// without a commit, on the terms of adopt.
func (r *Refresher) forget(ctx context.Context, s slot) {
	switch r.cfg.Sessions.Status(ctx) {
	case scs.Modified:
		if _, ok := r.slotValue(ctx, s); ok {
			r.dropSlot(ctx, s)
		}
	case scs.Unmodified:
		r.settleAfter(ctx)
	}
}

// settleAfter arranges, once per request, that when the request that
// carries ctx is over, its session is settled in the store (every launch)
// if the app modified the copy after adopt or forget left it alone
// (LoadAndSave then committed the copy's older tokens). A context that is
// never done (not an HTTP request's) has no end to wait for.
func (r *Refresher) settleAfter(ctx context.Context) {
	done := ctx.Done()
	if done == nil {
		return
	}
	if _, dup := r.settling.LoadOrStore(done, struct{}{}); dup {
		return
	}
	context.AfterFunc(ctx, func() {
		r.settling.Delete(done)
		if r.cfg.Sessions.Status(ctx) == scs.Modified {
			r.settleAll(ctx)
		}
	})
}

// newestKnown returns the newest token this process knows of rec's grant:
// rec itself unless a refresh here replaced it (rotating its refresh token
// or not).
func (r *Refresher) newestKnown(rec *record) *record {
	now := r.cfg.Now()
	for range maxChain {
		if rec.Token.RefreshToken == "" {
			return rec
		}
		fp := fingerprintOf(rec.Token.RefreshToken)
		next := r.ledger.newest(rec, fp, now, time.Time{})
		if next == nil {
			return r.newerHead(rec, fp, now)
		}
		rec = next
	}
	return rec
}

// newerHead returns the token of a refresh here that did not rotate rec's
// refresh token fp, if it is newer than rec, otherwise rec.
func (r *Refresher) newerHead(rec *record, fp fingerprint, now time.Time) *record {
	if h := r.ledger.head(fp, now); h != nil && h.Token.AccessToken != rec.Token.AccessToken && h.Obtained.After(rec.Obtained) {
		return h
	}
	return rec
}

// sameGrant reports whether a and b are tokens of the same grant, as far as
// this process knows.
func (r *Refresher) sameGrant(a, b *record) bool {
	if a.Token.AccessToken == b.Token.AccessToken {
		return true
	}
	if a.Grant != "" && b.Grant != "" {
		return a.Grant == b.Grant
	}
	if a.Token.RefreshToken == "" || b.Token.RefreshToken == "" {
		return false
	}
	return r.newestKnown(a).Token.RefreshToken == r.newestKnown(b).Token.RefreshToken
}

func (r *Refresher) commit(ctx context.Context) error {
	if _, _, err := r.cfg.Sessions.Commit(context.WithoutCancel(ctx)); err != nil {
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: committing the session failed", "error", err)
		return err
	}
	return nil
}
