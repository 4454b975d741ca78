package smartotel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartrefresh/smartrefresh/core"
)

// instrumentationName names the meter and the tracer. It is the name they
// had when package core held this instrumentation, so that dashboards and
// queries on the instrumentation scope keep working.
const instrumentationName = "github.com/smartrefresh/smartrefresh/core"

// Config names where the telemetry goes.
type Config struct {
	// MeterProvider receives the metrics; the global one
	// (otel.GetMeterProvider) when nil.
	MeterProvider metric.MeterProvider
	// TracerProvider receives the spans; the global one
	// (otel.GetTracerProvider) when nil.
	TracerProvider trace.TracerProvider
}

// Observer is a core.Observer that records a Refresher's token calls as
// OpenTelemetry metrics and spans. It is safe for concurrent use, and one
// Observer may serve several Refreshers.
type Observer struct {
	tracer    trace.Tracer
	refreshes metric.Int64Counter
	duration  metric.Float64Histogram
	waiters   metric.Int64Counter
	reauths   metric.Int64Counter
	resends   metric.Int64Counter
}

var _ core.Observer = (*Observer)(nil)

// New returns an Observer whose instruments are made by cfg's providers,
// or the error of the MeterProvider that could not make one.
func New(cfg Config) (*Observer, error) {
	mp, tp := cfg.MeterProvider, cfg.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	o := &Observer{tracer: tp.Tracer(instrumentationName)}
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

// StartRefresh opens the span of a token call.
func (o *Observer) StartRefresh(ctx context.Context) (context.Context, func()) {
	ctx, span := o.tracer.Start(ctx, "smartrefresh.refresh", trace.WithSpanKind(trace.SpanKindClient))
	return ctx, func() { span.End() }
}

// Refreshed records a token call that succeeded.
func (o *Observer) Refreshed(ctx context.Context, info core.RefreshInfo) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("smartrefresh.outcome", "success"),
		attribute.Bool("smartrefresh.rotated", info.Rotated),
		attribute.Int("smartrefresh.shared", info.Shared))
	o.refreshes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "success"), attribute.Bool("rotated", info.Rotated)))
	o.duration.Record(ctx, info.Duration.Seconds(), metric.WithAttributes(attribute.String("outcome", "success")))
	o.waiters.Add(ctx, int64(info.Shared-1))
}

// RefreshFailed records a token call that failed.
func (o *Observer) RefreshFailed(ctx context.Context, info core.RefreshErrorInfo) {
	label := outcome(info.Err)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("smartrefresh.outcome", label),
		attribute.Int("smartrefresh.shared", info.Shared))
	span.SetStatus(codes.Error, label)
	o.refreshes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", label)))
	o.duration.Record(ctx, info.Duration.Seconds(), metric.WithAttributes(attribute.String("outcome", label)))
	o.waiters.Add(ctx, int64(info.Shared-1))
}

// Reauth records a session whose token was removed because the user must
// authorize again.
func (o *Observer) Reauth(ctx context.Context, info core.ReauthInfo) {
	o.reauths.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reauthLabel(info.Reason))))
}

// Resend records a refresh token sent a second time.
func (o *Observer) Resend(ctx context.Context) {
	o.resends.Add(ctx, 1)
}

// outcome is the metric and span label of a refresh's result.
func outcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, core.ErrOutcomeUnknown):
		return "outcome_unknown"
	case errors.Is(err, core.ErrOverloaded):
		return "shed"
	case errors.Is(err, core.ErrReauthRequired):
		return "reauth_required"
	case errors.Is(err, core.ErrTransient):
		return "transient"
	}
	return "misconfigured"
}

// reauthLabel is the metric label of a re-auth's reason.
func reauthLabel(err error) string {
	switch {
	case errors.Is(err, core.ErrNoRefreshToken):
		return "no_refresh_token"
	case errors.Is(err, core.ErrCorruptSession):
		return "corrupt_session"
	case errors.Is(err, core.ErrRevoked):
		return "revoked"
	}
	return "invalid_grant"
}
