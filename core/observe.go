package core

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// An Observer is told of a Refresher's token calls and of the sessions
// that must authorize again, for metrics and traces: package
// github.com/smartrefresh/smartrefresh/smartotel is one, for OpenTelemetry,
// and an app may write its own. It is told facts, never a token or secret.
// Its methods run on the refresh's goroutine, concurrently for different
// grants: keep them fast and safe for concurrent use. A panic in one
// panics in each request that waits for that token call, as a handler's
// own would. Config's OnRefresh, OnRefreshError and OnReauth are called
// as well, after it.
type Observer interface {
	// StartRefresh is called when a token call is about to be made, before
	// it queues for a Config.MaxConcurrentRefreshes slot, with the context
	// of the request that started it. The call runs in the context it
	// returns (one that carries a span, say), and Refreshed or
	// RefreshFailed is then given that context; end is called once when
	// the call is over, after them, or alone when nothing was sent
	// because another replica redeemed the refresh token meanwhile. The
	// returned context's cancellation and deadline are ignored. A Token
	// call made with one of these contexts that would need a refresh
	// fails with ErrMisconfigured: the refresh it would wait for is the
	// one the Observer holds up.
	StartRefresh(ctx context.Context) (_ context.Context, end func())
	// Refreshed is called after each token call that succeeded.
	Refreshed(ctx context.Context, info RefreshInfo)
	// RefreshFailed is called after each token call that failed, and
	// after each refresh that found no MaxConcurrentRefreshes slot.
	RefreshFailed(ctx context.Context, info RefreshErrorInfo)
	// Reauth is called when a session's token is removed because the user
	// must authorize again, with the context of the request that met it.
	Reauth(ctx context.Context, info ReauthInfo)
	// Resend is called, with the context of the token call, when the
	// refresh token is sent a second time because the answer to the first
	// was lost (Config.ResendAfter).
	Resend(ctx context.Context)
}

// RefreshInfo describes a completed refresh.
type RefreshInfo struct {
	// Rotated reports whether the server issued a new refresh token.
	Rotated bool
	// Duration is how long the token call took, retries included.
	Duration time.Duration
	// Expiry is the new access token's expiry (zero when unknown).
	Expiry time.Time
	// Shared is the number of requests that shared this token call,
	// counting the one that started it.
	Shared int
	// ContextMismatch names the launch context fields ("encounter",
	// "patient") for which the answer gave a value other than the
	// launch's. SMART fixes the launch context at launch: the launch's
	// values are kept, and a warning is logged.
	ContextMismatch []string
	// Resent reports whether the refresh token was sent a second time
	// because the answer to the first was lost (Config.ResendAfter).
	Resent bool
}

// RefreshErrorInfo describes a failed refresh.
type RefreshErrorInfo struct {
	// Err is the error; it never holds a token or secret.
	Err error
	// Class is ErrReauthRequired, ErrTransient or ErrMisconfigured.
	Class error
	// OutcomeUnknown reports whether the token request was sent and its
	// answer lost (ErrOutcomeUnknown).
	OutcomeUnknown bool
	// Duration is how long the refresh took.
	Duration time.Duration
	// Shared is the number of requests that shared the failed call.
	Shared int
	// Resent reports whether the refresh token was sent a second time
	// because the answer to the first was lost (Config.ResendAfter).
	Resent bool
}

// ReauthInfo describes a session whose token was removed because the user
// must authorize again.
type ReauthInfo struct {
	// Reason is the error that required it (ErrNoRefreshToken,
	// ErrCorruptSession, ErrRevoked, or a *TokenError with invalid_grant).
	Reason error
}

// class returns the class of a refresh error: ErrReauthRequired,
// ErrTransient or ErrMisconfigured; nil for nil.
func class(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrReauthRequired):
		return ErrReauthRequired
	case errors.Is(err, ErrTransient):
		return ErrTransient
	}
	return ErrMisconfigured
}

// observed is a token call as the Observer sees it: the context it runs
// in and the end the Observer gave.
type observed struct {
	ctx context.Context
	end func()
}

// startRefresh tells the Observer that a token call starts.
func (r *Refresher) startRefresh(ctx context.Context) observed {
	if r.cfg.Observer == nil {
		return observed{ctx: ctx, end: func() {}}
	}
	// The Observer's contexts say that a refresh is under way: a Token
	// call made with one (see errObserverRefresh) fails at once instead
	// of joining the flight that waits for it.
	ctx = context.WithValue(ctx, observingKey{}, struct{}{})
	octx, end := r.cfg.Observer.StartRefresh(ctx)
	if octx == nil {
		octx = ctx
	}
	if end == nil {
		end = func() {}
	}
	// The call keeps the context's values (a span), never its end: an
	// Observer cannot cut a token call short, which would leave its
	// outcome unknown.
	return observed{ctx: context.WithoutCancel(octx), end: end}
}

// observingKey marks the contexts an Observer is given for a token call.
type observingKey struct{}

// errObserverRefresh: an Observer asked, with the context of a token call
// it was told of, for a token that needs a refresh: the one under way,
// which cannot end before the Observer returns.
var errObserverRefresh = fmt.Errorf("%w: an Observer asked for a refresh during the token call it observes", ErrMisconfigured)

// refreshed reports a successful token call to the Observer, log and hook.
func (r *Refresher) refreshed(ctx context.Context, call observed, info RefreshInfo) {
	if r.cfg.Observer != nil {
		r.cfg.Observer.Refreshed(call.ctx, info)
	}
	call.end()
	if info.Expiry.IsZero() {
		r.cfg.Logger.InfoContext(ctx, "smartrefresh: token answer has no usable expires_in; the token is refreshed after a 401 only")
	}
	r.cfg.Logger.DebugContext(ctx, "smartrefresh: token refreshed", "rotated", info.Rotated,
		"duration", info.Duration, "expiry", info.Expiry, "shared", info.Shared)
	if r.cfg.OnRefresh != nil {
		r.cfg.OnRefresh(info)
	}
}

// refreshFailed reports a failed token call to the Observer, log and hook.
func (r *Refresher) refreshFailed(ctx context.Context, call observed, info RefreshErrorInfo) {
	if r.cfg.Observer != nil {
		r.cfg.Observer.RefreshFailed(call.ctx, info)
	}
	call.end()
	switch {
	case errors.Is(info.Err, ErrReauthRequired):
		r.cfg.Logger.InfoContext(ctx, "smartrefresh: refresh token rejected, re-authorization required", "error", info.Err)
	case errors.Is(info.Err, ErrOutcomeUnknown):
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: refresh outcome unknown, token kept; the next request tries it again",
			"error", info.Err, "duration", info.Duration)
	case errors.Is(info.Err, ErrTransient):
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: refresh failed, token kept", "error", info.Err, "duration", info.Duration)
	default:
		r.cfg.Logger.ErrorContext(ctx, "smartrefresh: refresh failed, check the configuration", "error", info.Err)
	}
	if r.cfg.OnRefreshError != nil {
		r.cfg.OnRefreshError(info)
	}
}

// reauth reports a session whose token is being removed because the user
// must authorize again.
func (r *Refresher) reauth(ctx context.Context, reason error) {
	info := ReauthInfo{Reason: reason}
	if r.cfg.Observer != nil {
		r.cfg.Observer.Reauth(ctx, info)
	}
	if r.cfg.OnReauth != nil {
		r.cfg.OnReauth(info)
	}
}

// resent reports a refresh token sent a second time.
func (r *Refresher) resent(ctx context.Context) {
	if r.cfg.Observer != nil {
		r.cfg.Observer.Resend(ctx)
	}
}

// reauthOnce reports the end of a grant once: to the first request that
// meets it, with its true reason.
func (r *Refresher) reauthOnce(ctx context.Context, rv *revocation) {
	if rv.reported.CompareAndSwap(false, true) {
		r.reauth(ctx, rv.reason)
	}
}

// joinFlight counts the caller into the flight for key, so the flight can
// report how many requests shared it.
func (r *Refresher) joinFlight(key string) *atomic.Int64 {
	v, _ := r.sharing.LoadOrStore(key, new(atomic.Int64))
	n := v.(*atomic.Int64)
	n.Add(1)
	return n
}

// leaveFlight forgets the flight's counter once the flight has ended.
func (r *Refresher) leaveFlight(key string, n *atomic.Int64) {
	r.sharing.CompareAndDelete(key, n)
}
