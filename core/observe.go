package core

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// instrumentationName names the refresher's meter and tracer.
const instrumentationName = "github.com/smartrefresh/smartrefresh/core"

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

// outcome is the metric and span label of a refresh's result.
func outcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ErrOutcomeUnknown):
		return "outcome_unknown"
	case errors.Is(err, ErrOverloaded):
		return "shed"
	case errors.Is(err, ErrReauthRequired):
		return "reauth_required"
	case errors.Is(err, ErrTransient):
		return "transient"
	}
	return "misconfigured"
}

// observer holds the refresher's OpenTelemetry instruments. With no
// providers configured they are no-ops.
//
// Metrics:
//   - smartrefresh.refreshes: token calls, by outcome (success,
//     outcome_unknown, transient, reauth_required, misconfigured) and, on
//     success, rotated;
//   - smartrefresh.refresh.duration: seconds per token call, retries
//     included, by outcome;
//   - smartrefresh.refresh.waiters: requests that waited on a refresh
//     another request started;
//   - smartrefresh.reauths: sessions whose token was removed, by reason;
//   - smartrefresh.refresh.resends: refresh tokens sent a second time after
//     the answer to the first was lost (Config.ResendAfter).
//
// Each token call is a span, smartrefresh.refresh, of kind client.
type observer struct {
	tracer    trace.Tracer
	refreshes metric.Int64Counter
	duration  metric.Float64Histogram
	waiters   metric.Int64Counter
	reauths   metric.Int64Counter
	resends   metric.Int64Counter
}

func newObserver(mp metric.MeterProvider, tp trace.TracerProvider) (*observer, error) {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	o := &observer{tracer: tp.Tracer(instrumentationName)}
	var err error
	if o.refreshes, err = m.Int64Counter("smartrefresh.refreshes",
		metric.WithDescription("Token endpoint refreshes, by outcome.")); err != nil {
		return nil, err
	}
	if o.duration, err = m.Float64Histogram("smartrefresh.refresh.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of each refresh at the token endpoint, retries included."),
		metric.WithExplicitBucketBoundaries(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, err
	}
	if o.waiters, err = m.Int64Counter("smartrefresh.refresh.waiters",
		metric.WithDescription("Requests that waited on a refresh another request started.")); err != nil {
		return nil, err
	}
	if o.reauths, err = m.Int64Counter("smartrefresh.reauths",
		metric.WithDescription("Sessions whose token was removed because the user must authorize again.")); err != nil {
		return nil, err
	}
	if o.resends, err = m.Int64Counter("smartrefresh.refresh.resends",
		metric.WithDescription("Refresh tokens sent a second time after the answer to the first was lost.")); err != nil {
		return nil, err
	}
	return o, nil
}

// startRefresh opens the span of one token call.
func (r *Refresher) startRefresh(ctx context.Context) (context.Context, trace.Span) {
	return r.obs.tracer.Start(ctx, "smartrefresh.refresh", trace.WithSpanKind(trace.SpanKindClient))
}

// refreshed reports a successful token call to the span, metrics, log and
// hook.
func (r *Refresher) refreshed(ctx context.Context, span trace.Span, info RefreshInfo) {
	span.SetAttributes(attribute.String("smartrefresh.outcome", "success"),
		attribute.Bool("smartrefresh.rotated", info.Rotated),
		attribute.Int("smartrefresh.shared", info.Shared))
	span.End()
	attrs := metric.WithAttributes(attribute.String("outcome", "success"), attribute.Bool("rotated", info.Rotated))
	r.obs.refreshes.Add(ctx, 1, attrs)
	r.obs.duration.Record(ctx, info.Duration.Seconds(), metric.WithAttributes(attribute.String("outcome", "success")))
	r.obs.waiters.Add(ctx, int64(info.Shared-1))
	if info.Expiry.IsZero() {
		r.cfg.Logger.InfoContext(ctx, "smartrefresh: token answer has no usable expires_in; the token is refreshed after a 401 only")
	}
	r.cfg.Logger.DebugContext(ctx, "smartrefresh: token refreshed", "rotated", info.Rotated,
		"duration", info.Duration, "expiry", info.Expiry, "shared", info.Shared)
	if r.cfg.OnRefresh != nil {
		r.cfg.OnRefresh(info)
	}
}

// refreshFailed reports a failed token call to the span, metrics, log and
// hook.
func (r *Refresher) refreshFailed(ctx context.Context, span trace.Span, info RefreshErrorInfo) {
	label := outcome(info.Err)
	span.SetAttributes(attribute.String("smartrefresh.outcome", label),
		attribute.Int("smartrefresh.shared", info.Shared))
	span.SetStatus(codes.Error, label)
	span.End()
	r.obs.refreshes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", label)))
	r.obs.duration.Record(ctx, info.Duration.Seconds(), metric.WithAttributes(attribute.String("outcome", label)))
	r.obs.waiters.Add(ctx, int64(info.Shared-1))
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
	r.obs.reauths.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reauthLabel(reason))))
	if r.cfg.OnReauth != nil {
		r.cfg.OnReauth(ReauthInfo{Reason: reason})
	}
}

// reauthOnce reports the end of a grant once: to the first request that
// meets it, with its true reason.
func (r *Refresher) reauthOnce(ctx context.Context, rv *revocation) {
	if rv.reported.CompareAndSwap(false, true) {
		r.reauth(ctx, rv.reason)
	}
}

func reauthLabel(err error) string {
	switch {
	case errors.Is(err, ErrNoRefreshToken):
		return "no_refresh_token"
	case errors.Is(err, ErrCorruptSession):
		return "corrupt_session"
	case errors.Is(err, ErrRevoked):
		return "revoked"
	}
	return "invalid_grant"
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
