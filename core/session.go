package core

import (
	"context"
	"encoding/gob"
	"errors"
	"time"
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

// load returns the session's token record.
func (r *Refresher) load(ctx context.Context) (*record, error) {
	v, ok := r.get(ctx)
	if !ok {
		return nil, ErrNoSession
	}
	if v == nil {
		return nil, ErrNoToken
	}
	rec, err := r.decodeSessionRecord(v)
	if errors.Is(err, ErrTransient) {
		// Possibly a good token that another replica can read (a newer
		// key or format during a rolling deploy): leave it.
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: leaving a session token this process cannot read", "error", err)
		return nil, err
	}
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: removing a session value that is not a token")
		r.reauth(ctx, ErrCorruptSession)
		r.remove(ctx)
		return nil, ErrCorruptSession
	}
	if r.ledger.isRevokedAccess(rec.Token.AccessToken, r.cfg.Now) {
		// A copy of a token Logout revoked: a stale session copy
		// written back, or a refresh stored after the Logout.
		r.reauth(ctx, ErrRevoked)
		r.remove(ctx)
		return nil, ErrRevoked
	}
	return rec, nil
}

// store puts rec into the session of ctx and commits the session at once,
// so that the new token is persisted even when the request that carries
// ctx is cancelled or has already answered.
func (r *Refresher) store(ctx context.Context, rec *record) error {
	if err := r.put(ctx, rec); err != nil {
		return err
	}
	return r.commit(ctx)
}

// put puts rec into the session of ctx without committing: the request's
// own LoadAndSave commits it (Put marks the session modified). For the
// copies of requests that waited on a refresh, whose result persist has
// already committed; committing each of them too would encode and write
// the session twice per request.
func (r *Refresher) put(ctx context.Context, rec *record) error {
	v, err := r.sessionValue(rec)
	if err != nil {
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: encoding the token for the session failed", "error", err)
		return err
	}
	r.cfg.Sessions.Put(ctx, r.cfg.SessionKey, v)
	return nil
}

// persist stores rec in the session of ctx as it is now in the store, read
// afresh, whatever became of the request that carries ctx. Writing that
// request's own copy instead would put back whatever other requests have
// changed in the session since it was loaded, and could bring back a
// session they destroyed; a session that is gone from the store stays gone.
// The request itself, if it is still running, stores rec in its own copy
// too (Refresher.refresh).
func (r *Refresher) persist(ctx context.Context, rec *record) {
	bg := context.WithoutCancel(ctx)
	token := r.cfg.Sessions.Token(ctx)
	if token == "" {
		// A session that was never committed: only this copy has it.
		r.store(bg, rec)
		return
	}
	// A context without ctx's values: scs's Load returns a context that
	// already carries a session unchanged.
	fresh, err := r.cfg.Sessions.Load(context.Background(), token)
	if err != nil {
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: loading the session to store the refreshed token failed", "error", err)
		return
	}
	if r.cfg.Sessions.Token(fresh) == "" {
		return // destroyed or expired meanwhile
	}
	r.store(fresh, rec)
}

// remove deletes the token, and the identity of its login, from the
// session of ctx and commits.
func (r *Refresher) remove(ctx context.Context) error {
	r.cfg.Sessions.Remove(ctx, r.cfg.SessionKey)
	r.cfg.Sessions.Remove(ctx, r.identityKey())
	return r.commit(ctx)
}

func (r *Refresher) commit(ctx context.Context) error {
	if _, _, err := r.cfg.Sessions.Commit(context.WithoutCancel(ctx)); err != nil {
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: committing the session failed", "error", err)
		return err
	}
	return nil
}
