package core

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
// Package rediscoord implements it on Redis.
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

func (e *CoordinatorError) Unwrap() []error { return []error{ErrTransient, e.Err} }

// ErrSharedLedger: another replica recorded the redemption of this refresh
// token, but its record cannot be read here; replicas must share their
// Config (EncryptionKeys, SessionKey). The refresh token is not sent again.
var ErrSharedLedger = fmt.Errorf("%w: a redemption recorded by another replica cannot be decoded (replicas must share EncryptionKeys and SessionKey)", ErrMisconfigured)

func lockKey(fp fingerprint) string     { return "smartrefresh:lock:" + hex.EncodeToString(fp[:]) }
func redeemedKey(fp fingerprint) string { return "smartrefresh:redeemed:" + hex.EncodeToString(fp[:]) }

// newest returns the newest token of the grant whose refresh token fp was
// already redeemed, by this process or, with a Coordinator, by any replica;
// nil if fp was never redeemed.
func (r *Refresher) newest(ctx context.Context, fp fingerprint) (*record, error) {
	if next := r.ledger.newest(fp, r.cfg.Now()); next != nil || r.cfg.Coordinator == nil {
		return next, nil
	}
	return r.sharedRedemption(ctx, fp)
}

// sharedRedemption reads the Coordinator's record of fp's redemption and
// copies it into the local ledger.
func (r *Refresher) sharedRedemption(ctx context.Context, fp fingerprint) (*record, error) {
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
	r.ledger.redeem(fp, next, r.cfg.Now())
	return next, nil
}

// shareTimeout bounds each attempt to record a redemption for the other
// replicas; shareAttempts is how many are made.
const (
	shareTimeout  = 5 * time.Second
	shareAttempts = 3
)

// shareRedemption records for the other replicas that fp was redeemed for
// next. It runs on a deadline of its own: however late the token answer
// came, the record must be made before the lock is released.
func (r *Refresher) shareRedemption(ctx context.Context, fp fingerprint, next *record) error {
	blob, err := r.encodeShared(next)
	if err != nil {
		return &CoordinatorError{Op: "store", Err: err}
	}
	for range shareAttempts {
		sctx, cancel := context.WithTimeout(ctx, shareTimeout)
		err = r.cfg.Coordinator.Store(sctx, redeemedKey(fp), blob, r.ledger.ttl)
		cancel()
		if err == nil {
			return nil
		}
	}
	return &CoordinatorError{Op: "store", Err: err}
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
