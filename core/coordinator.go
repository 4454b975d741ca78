package core

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// A Coordinator lets the Refreshers of several processes (the replicas of
// an app behind a load balancer, sharing one session store) keep the
// promise together: a refresh token is redeemed once, by one replica, and
// every replica that later meets it (in a concurrent request or in a stale
// session copy) gets its grant's newer token instead.
//
// With a Coordinator, each refresh takes the lock named after its refresh
// token, checks whether another replica already redeemed it, and if not
// makes the token call and stores the result before unlocking. Without one
// (Config.Coordinator nil) the same happens within this process only.
//
// The lock is for liveness: it lets one replica redeem while the others
// wait, and frees a crashed holder's grant within a lease. Safety rests on
// the claim: just before the token call, the holder claims the refresh
// token for the call's whole RefreshTimeout (plus a margin), and sends
// nothing if it cannot. A claim is never renewed and never taken over
// before it expires, so whatever happens to the lock meanwhile (a lease
// run out while the engine was paused or away, a key evicted or deleted,
// a connection ended), no other replica sends that refresh token before
// the holder's call is answered and recorded, or certainly over.
//
// Packages rediscoord and pgcoord implement it on Redis and PostgreSQL.
type Coordinator interface {
	// Lock blocks until this process holds the lock named key, or ctx is
	// done. The lock must stay held until unlock is called however long
	// that takes (a lease must be renewed while held), and a crashed
	// holder's lock must be freed eventually.
	Lock(ctx context.Context, key string) (unlock func(), err error)
	// Load returns the value stored under key, and false if there is none.
	Load(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Store stores value under key for at least ttl.
	Store(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Claim stores a value of its own under key for ttl, unless key holds
	// a live value already (another holder's claim): then it reports
	// false. A claim is never extended, and nothing but its own release
	// ends it before ttl has passed: not a lock lost, a connection ended
	// or a restart of the engine (with persistence). While it lives, Load
	// of key reports it. release deletes it if it is still this claim
	// (not a later one), on no caller's context; it may be called more
	// than once.
	Claim(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error)
}

// CoordinatorError is a failure of the Config.Coordinator. The refresh did
// not send the refresh token, and the stored token is kept.
type CoordinatorError struct {
	Op  string
	Err error
}

func (e *CoordinatorError) Error() string {
	return "smartrefresh: coordinator " + e.Op + ": " + e.Err.Error()
}

// Unwrap makes a CoordinatorError match ErrTransient, unless the
// Coordinator said it is misconfigured (its tables missing, say): that is
// ErrMisconfigured only, which no retry mends.
func (e *CoordinatorError) Unwrap() []error {
	if errors.Is(e.Err, ErrMisconfigured) {
		return []error{e.Err}
	}
	return []error{ErrTransient, e.Err}
}

// ErrSharedLedger: another replica recorded the redemption of this refresh
// token, but its record cannot be read here; replicas must share their
// Config (EncryptionKeys, SessionKey). The refresh token is not sent again.
var ErrSharedLedger = fmt.Errorf("%w: a redemption recorded by another replica cannot be decoded (replicas must share EncryptionKeys and SessionKey)", ErrMisconfigured)

func lockKey(fp fingerprint) string     { return "smartrefresh:lock:" + hex.EncodeToString(fp[:]) }
func redeemedKey(fp fingerprint) string { return "smartrefresh:redeemed:" + hex.EncodeToString(fp[:]) }
func sendingKey(fp fingerprint) string  { return "smartrefresh:sending:" + hex.EncodeToString(fp[:]) }

// claimMargin is how much longer than the token call's RefreshTimeout its
// claim lives: for the request still in the kernel's buffers when the
// call's deadline ends it, and for the engine's clock.
const claimMargin = time.Second

// errClaimed: another replica's claim on the refresh token outlived the
// wait for it; nothing was sent, the token is kept.
var errClaimed = errors.New("another replica's token call with this refresh token is not resolved yet (its claim lives until that call's RefreshTimeout has passed)")

// claimSend claims fp, holding fp's lock, for a token call that must end
// by deadline (RefreshTimeout after the claim was sent, so before the
// claim can expire): no other replica sends fp until the claim is
// released (after the call's outcome is known, and recorded) or expires, a
// margin after that deadline. It then looks a last time for a record of
// fp's redemption, made by a replica whose claim ended before this one
// began. The caller sends fp only when both succeed, and calls release
// when the call's outcome is known (never when it is unknown: the claim
// then expires by itself).
//
// While another replica's claim on fp lives (its token call may be in
// flight although it lost the lock, or its outcome is unknown), claimSend
// fails at once with a transient *CoordinatorError if cur's access token
// is still valid: the callers use it, and a later request tries again.
// Otherwise it waits: it returns that call's record if one appears, claims
// fp once the claim is gone, or fails when ctx ends first.
func (r *Refresher) claimSend(ctx context.Context, cur *record, fp fingerprint) (release func(), deadline time.Time, next *record, err error) {
	wait := 10 * time.Millisecond
	for logged := false; ; logged = true {
		deadline = time.Now().Add(r.cfg.RefreshTimeout)
		release, ok, err := r.cfg.Coordinator.Claim(ctx, sendingKey(fp), r.cfg.RefreshTimeout+claimMargin)
		if err != nil {
			return nil, deadline, nil, &CoordinatorError{Op: "claim", Err: err}
		}
		// The holder of a claim records its redemption before it releases
		// the claim: look for the record once claimed, and while waiting.
		next, err := r.sharedRedemption(ctx, cur, fp)
		if ok && (next != nil || err != nil) {
			release()
		}
		if ok || next != nil || err != nil {
			return release, deadline, next, err
		}
		if cur.Token.Valid(r.cfg.Now()) {
			return nil, deadline, nil, &CoordinatorError{Op: "claim", Err: errClaimed}
		}
		if !logged {
			r.cfg.Logger.WarnContext(ctx, "smartrefresh: another replica's token call with this refresh token is unresolved; waiting for its record or the end of its RefreshTimeout")
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, deadline, nil, &CoordinatorError{Op: "claim", Err: fmt.Errorf("%w: %w", errClaimed, ctx.Err())}
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// newest returns the newest token of the grant whose refresh token fp was
// already redeemed, by this process or, with a Coordinator, by any replica;
// nil if fp was never redeemed.
func (r *Refresher) newest(ctx context.Context, cur *record, fp fingerprint) (*record, error) {
	if next := r.ledger.newest(cur, fp, r.cfg.Now(), r.retainUntil(ctx)); next != nil || r.cfg.Coordinator == nil {
		return next, nil
	}
	// Bounded like every wait of a refresh, whatever the request's own
	// deadline (it may have none).
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RefreshTimeout)
	defer cancel()
	return r.sharedRedemption(ctx, cur, fp)
}

// sharedRedemption reads the Coordinator's record of fp's redemption and
// copies it into the local ledger.
func (r *Refresher) sharedRedemption(ctx context.Context, cur *record, fp fingerprint) (*record, error) {
	blob, ok, err := r.cfg.Coordinator.Load(ctx, redeemedKey(fp))
	if err != nil {
		return nil, &CoordinatorError{Op: "load", Err: err}
	}
	if !ok {
		return nil, nil
	}
	next, err := r.decodeShared(blob)
	if errors.Is(err, ErrUnknownEncryptionKey) {
		// Sealed by a replica with a key this one does not have yet:
		// nothing is sent, the token is kept, a later request retries.
		return nil, err
	}
	if err != nil {
		return nil, ErrSharedLedger
	}
	if fingerprintOf(next.Token.RefreshToken) == fp {
		// Not a rotation (records of one are not written): fp is still
		// the grant's refresh token.
		return nil, nil
	}
	r.ledger.redeem(cur, fp, next, r.cfg.Now(), r.retainUntil(ctx))
	return next, nil
}

// Recording a redemption for the other replicas is retried with backoff:
// each attempt is bounded by shareTimeout, the backoff starts at
// shareBackoff and doubles up to shareMaxBackoff, and the refresh waits for
// the record at most shareWithin. After that the record is made in the
// background, the lock still held (see shareRedemption).
const (
	shareTimeout    = 2 * time.Second
	shareBackoff    = 10 * time.Millisecond
	shareMaxBackoff = time.Second
	shareWithin     = 5 * time.Second
)

// shareRedemption records for the other replicas that fp was redeemed for
// next, while this process holds fp's lock. It runs on a deadline of its
// own: however late the token answer came, the record must be made before
// the lock is released, or another replica that takes the lock next and
// finds no record sends fp again.
//
// It tries for shareWithin, with backoff (after a Redis restart, say, the
// Coordinator's first attempts may fail on dead connections while Redis
// already answers). If the record is made, it returns true and the caller
// unlocks. If not, it returns false: unlock then belongs to a goroutine
// that keeps the lock (the Coordinator renews its lease while held) and
// keeps trying until the record is made, and only then unlocks. A
// redemption is never unlocked with its record missing. That goroutine
// gives up after ttl, when no copy of a session holding fp is left to
// redeem it; a process that stops meanwhile leaves the lock to its lease,
// the outcome-unknown case of the package documentation.
func (r *Refresher) shareRedemption(ctx context.Context, fp fingerprint, next *record, unlock func()) bool {
	ctx = context.WithoutCancel(ctx)
	ttl := r.retention(ctx)
	deadline := time.Now().Add(r.shareWithin)
	err := r.recordShared(ctx, fp, next, ttl, deadline)
	if err == nil {
		return true
	}
	r.cfg.Logger.ErrorContext(ctx, "smartrefresh: could not record the refresh for the other replicas yet; keeping its lock and trying until it is recorded",
		"error", err)
	go func() {
		deadline := time.Now().Add(ttl)
		if err := r.recordShared(ctx, fp, next, ttl, deadline); err != nil {
			r.cfg.Logger.ErrorContext(ctx, "smartrefresh: gave up recording a refresh for the other replicas", "error", err)
		} else {
			r.cfg.Logger.WarnContext(ctx, "smartrefresh: recorded a refresh for the other replicas after all")
		}
		unlock()
	}()
	return false
}

// recordShared stores the record of fp's redemption, trying with backoff
// until it succeeds or deadline passes.
func (r *Refresher) recordShared(ctx context.Context, fp fingerprint, next *record, ttl time.Duration, deadline time.Time) error {
	wait := shareBackoff
	for {
		blob, err := r.encodeShared(next)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, shareTimeout)
			err = r.cfg.Coordinator.Store(sctx, redeemedKey(fp), blob, ttl)
			cancel()
		}
		if err == nil {
			return nil
		}
		d := wait/2 + rand.N(wait/2+1)
		if time.Now().Add(d).After(deadline) {
			return &CoordinatorError{Op: "store", Err: err}
		}
		time.Sleep(d)
		wait = min(2*wait, shareMaxBackoff)
	}
}

// encodeShared and decodeShared convert a record for the Coordinator: the
// explicit JSON of sealedRecord, sealed when EncryptionKeys are configured.
// decodeShared reads both forms, like session values: a replica with
// DecryptionKeys only (the first phase of a key rotation) writes JSON and
// reads what replicas already encrypting with the new key write.
func (r *Refresher) encodeShared(rec *record) ([]byte, error) {
	if r.sealer.canSeal() {
		return r.sealer.seal(rec)
	}
	return json.Marshal(sealedFrom(rec))
}

func (r *Refresher) decodeShared(blob []byte) (*record, error) {
	if len(blob) > 0 && blob[0] == '{' {
		if r.sealer.canSeal() {
			return nil, errNotAToken // in the clear, while records must be sealed
		}
		return decodeSealed(blob)
	}
	return r.sealer.open(blob)
}

// lockShared takes the Coordinator's lock for fp, if there is a
// Coordinator.
func (r *Refresher) lockShared(ctx context.Context, fp fingerprint) (unlock func(), err error) {
	if r.cfg.Coordinator == nil {
		return func() {}, nil
	}
	unlock, err = r.cfg.Coordinator.Lock(ctx, lockKey(fp))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			err = fmt.Errorf("lock not obtained before the refresh deadline: %w", err)
		}
		return nil, &CoordinatorError{Op: "lock", Err: err}
	}
	return unlock, nil
}
