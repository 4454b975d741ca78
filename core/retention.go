package core

import (
	"context"
	"time"
)

// retentionGrace is added to every retention, for requests still running
// at a session's deadline and for clocks that differ between replicas.
const retentionGrace = time.Minute

// defaultSessionLifetime is what a session lives when the manager's
// Lifetime is not positive (scs's own default).
const defaultSessionLifetime = 24 * time.Hour

// retention is how long a redemption made for the session of ctx, or a
// grant Logout revoked, must be remembered, here (the ledger) and by the
// Coordinator (its record's TTL): as long as any copy of the session that
// may hold the redeemed (or revoked) refresh token can live. That is the longer of
//
//   - the session's own deadline (scs Deadline; a "remember me" SetDeadline
//     counts), and
//   - the manager's Lifetime as it is now, not as it was in New, for
//     copies whose deadline a concurrent request renews,
//
// plus retentionGrace. It is read at each redemption, and again whenever a
// stale copy of a session is met, which extends the grant's entry to that
// copy's bound.
//
// What it cannot see: a deadline extended after the redemption by a
// request that holds a stale copy and never calls the Refresher. scs's
// RenewToken, which Save calls, resets the deadline to now + Lifetime, so
// set a "remember me" deadline after Save, in the same request.
func (r *Refresher) retention(ctx context.Context) time.Duration {
	d := r.cfg.Sessions.Lifetime
	if d <= 0 {
		d = defaultSessionLifetime
	}
	if dl, ok := r.deadline(ctx); ok {
		// scs deadlines are on the wall clock, whatever Config.Now says.
		d = max(d, time.Until(dl))
	}
	return d + retentionGrace
}

// retainUntil is retention as a time on the Refresher's clock.
func (r *Refresher) retainUntil(ctx context.Context) time.Time {
	return r.cfg.Now().Add(r.retention(ctx))
}

// deadline returns the scs deadline of the session of ctx, if ctx carries
// one (scs panics when it does not).
func (r *Refresher) deadline(ctx context.Context) (dl time.Time, ok bool) {
	defer func() {
		if recover() != nil {
			dl, ok = time.Time{}, false
		}
	}()
	dl = r.cfg.Sessions.Deadline(ctx)
	return dl, !dl.IsZero()
}
