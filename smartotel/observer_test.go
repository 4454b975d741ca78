package smartotel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/smartotel"
)

// TestInstruments: the metrics keep the names, kinds, units, descriptions
// and buckets, and the meter and tracer the scope name, they had in core;
// they are users' dashboards.
func TestInstruments(t *testing.T) {
	rec := newRecorder()
	if _, err := smartotel.New(smartotel.Config{MeterProvider: rec, TracerProvider: rec}); err != nil {
		t.Fatal(err)
	}
	want := map[string]instrument{
		"smartrefresh.refreshes": {kind: "Int64Counter", description: "Token endpoint refreshes, by outcome."},
		"smartrefresh.refresh.duration": {kind: "Float64Histogram", unit: "s",
			description: "Duration of each refresh at the token endpoint, retries included.",
			buckets:     []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}},
		"smartrefresh.refresh.waiters": {kind: "Int64Counter", description: "Requests that waited on a refresh another request started."},
		"smartrefresh.reauths":         {kind: "Int64Counter", description: "Sessions whose token was removed because the user must authorize again."},
		"smartrefresh.refresh.resends": {kind: "Int64Counter", description: "Refresh tokens sent a second time after the answer to the first was lost."},
	}
	if len(rec.instruments) != len(want) {
		t.Errorf("%d instruments, want %d: %v", len(rec.instruments), len(want), rec.instruments)
	}
	for name, w := range want {
		got, ok := rec.instruments[name]
		if !ok || got.kind != w.kind || got.unit != w.unit || got.description != w.description || !slices.Equal(got.buckets, w.buckets) {
			t.Errorf("%s = %+v, want %+v", name, got, w)
		}
	}
	scopes := []string{"meter github.com/smartrefresh/smartrefresh/core", "tracer github.com/smartrefresh/smartrefresh/core"}
	if !slices.Equal(rec.scopes, scopes) {
		t.Errorf("scopes %q, want %q", rec.scopes, scopes)
	}
}

// TestRecords: what each Observer method records, data point by data
// point and span by span.
func TestRecords(t *testing.T) {
	tokenErr := &core.TokenError{Code: "invalid_grant"}
	for _, tt := range []struct {
		name  string
		call  func(o *smartotel.Observer, ctx context.Context)
		sums  map[string]int64
		count string // the histogram's data point
		span  []attribute.KeyValue
		fail  string // the span's error status, if any
	}{
		{"success, rotated, shared by 30", func(o *smartotel.Observer, ctx context.Context) {
			o.Refreshed(ctx, core.RefreshInfo{Rotated: true, Shared: 30, Duration: time.Second})
		}, map[string]int64{"smartrefresh.refreshes{outcome=success,rotated=true}": 1, "smartrefresh.refresh.waiters{}": 29},
			"smartrefresh.refresh.duration{outcome=success}",
			[]attribute.KeyValue{attribute.String("smartrefresh.outcome", "success"), attribute.Bool("smartrefresh.rotated", true), attribute.Int("smartrefresh.shared", 30)}, ""},
		{"success, not rotated", func(o *smartotel.Observer, ctx context.Context) {
			o.Refreshed(ctx, core.RefreshInfo{Shared: 1})
		}, map[string]int64{"smartrefresh.refreshes{outcome=success,rotated=false}": 1, "smartrefresh.refresh.waiters{}": 0},
			"smartrefresh.refresh.duration{outcome=success}",
			[]attribute.KeyValue{attribute.String("smartrefresh.outcome", "success"), attribute.Bool("smartrefresh.rotated", false), attribute.Int("smartrefresh.shared", 1)}, ""},
		{"outcome unknown", failed(core.ErrOutcomeUnknown, 3), wantFailure("outcome_unknown", 2), "smartrefresh.refresh.duration{outcome=outcome_unknown}",
			failSpan("outcome_unknown", 3), "outcome_unknown"},
		{"shed", failed(&core.OverloadError{}, 1), wantFailure("shed", 0), "smartrefresh.refresh.duration{outcome=shed}",
			failSpan("shed", 1), "shed"},
		{"invalid_grant", failed(tokenErr, 5), wantFailure("reauth_required", 4), "smartrefresh.refresh.duration{outcome=reauth_required}",
			failSpan("reauth_required", 5), "reauth_required"},
		{"transient", failed(core.ErrTransient, 1), wantFailure("transient", 0), "smartrefresh.refresh.duration{outcome=transient}",
			failSpan("transient", 1), "transient"},
		{"misconfigured", failed(errors.New("unknown client"), 1), wantFailure("misconfigured", 0), "smartrefresh.refresh.duration{outcome=misconfigured}",
			failSpan("misconfigured", 1), "misconfigured"},
		{"reauth, invalid_grant", reauth(tokenErr), map[string]int64{"smartrefresh.reauths{reason=invalid_grant}": 1}, "", nil, ""},
		{"reauth, no refresh token", reauth(core.ErrNoRefreshToken), map[string]int64{"smartrefresh.reauths{reason=no_refresh_token}": 1}, "", nil, ""},
		{"reauth, corrupt session", reauth(core.ErrCorruptSession), map[string]int64{"smartrefresh.reauths{reason=corrupt_session}": 1}, "", nil, ""},
		{"reauth, revoked", reauth(core.ErrRevoked), map[string]int64{"smartrefresh.reauths{reason=revoked}": 1}, "", nil, ""},
		{"resend", func(o *smartotel.Observer, ctx context.Context) { o.Resend(ctx) },
			map[string]int64{"smartrefresh.refresh.resends{}": 1}, "", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			o, err := smartotel.New(smartotel.Config{MeterProvider: rec, TracerProvider: rec})
			if err != nil {
				t.Fatal(err)
			}
			ctx, end := o.StartRefresh(context.Background())
			tt.call(o, ctx)
			end()
			if len(rec.sums) != len(tt.sums) {
				t.Errorf("sums %v, want %v", rec.sums, tt.sums)
			}
			for k, v := range tt.sums {
				if rec.sums[k] != v {
					t.Errorf("%s = %d, want %d (all: %v)", k, rec.sums[k], v, rec.sums)
				}
			}
			if tt.count != "" && (len(rec.counts) != 1 || rec.counts[tt.count] != 1) {
				t.Errorf("histogram %v, want one value at %s", rec.counts, tt.count)
			}
			if tt.count == "" && len(rec.counts) != 0 {
				t.Errorf("histogram %v, want none", rec.counts)
			}
			spans := rec.ended()
			if len(spans) != 1 || spans[0].name != "smartrefresh.refresh" || spans[0].kind != trace.SpanKindClient {
				t.Fatalf("spans %+v, want one smartrefresh.refresh of kind client", spans)
			}
			if !slices.Equal(spans[0].attrs, tt.span) {
				t.Errorf("span attributes %v, want %v", spans[0].attrs, tt.span)
			}
			wantStatus := codes.Unset
			if tt.fail != "" {
				wantStatus = codes.Error
			}
			if spans[0].status != wantStatus || spans[0].description != tt.fail {
				t.Errorf("span status %v %q, want %v %q", spans[0].status, spans[0].description, wantStatus, tt.fail)
			}
		})
	}
}

func failed(err error, shared int) func(*smartotel.Observer, context.Context) {
	return func(o *smartotel.Observer, ctx context.Context) {
		o.RefreshFailed(ctx, core.RefreshErrorInfo{Err: err, Shared: shared, Duration: time.Second})
	}
}

func reauth(reason error) func(*smartotel.Observer, context.Context) {
	return func(o *smartotel.Observer, ctx context.Context) {
		o.Reauth(ctx, core.ReauthInfo{Reason: reason})
	}
}

func wantFailure(outcome string, waiters int64) map[string]int64 {
	return map[string]int64{"smartrefresh.refreshes{outcome=" + outcome + "}": 1, "smartrefresh.refresh.waiters{}": waiters}
}

func failSpan(outcome string, shared int) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("smartrefresh.outcome", outcome), attribute.Int("smartrefresh.shared", shared)}
}

// TestWithRefresher: a Refresher with the Observer and the app's own hooks.
// A storm of 30 requests after expiry is one refresh, a span and a
// success; an invalid_grant is a failure and one re-auth. The waiters are
// the requests the hook says shared the refresh, the token request runs
// inside the span, the app's hooks hear the same, and no attribute holds a
// secret.
func TestWithRefresher(t *testing.T) {
	rec := newRecorder()
	o, err := smartotel.New(smartotel.Config{MeterProvider: rec, TracerProvider: rec})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hooks []string
	var shared int64
	var tokenCallSpans []trace.SpanContext
	a, err := newApp(core.Config{
		Observer: o,
		OnRefresh: func(i core.RefreshInfo) {
			mu.Lock()
			hooks, shared = append(hooks, "refresh"), shared+int64(i.Shared-1)
			mu.Unlock()
		},
		OnRefreshError: func(core.RefreshErrorInfo) { mu.Lock(); hooks = append(hooks, "error"); mu.Unlock() },
		OnReauth:       func(core.ReauthInfo) { mu.Lock(); hooks = append(hooks, "reauth"); mu.Unlock() },
		HTTPClient: &http.Client{Transport: roundTripper(func(req *http.Request) (*http.Response, error) {
			mu.Lock()
			tokenCallSpans = append(tokenCallSpans, trace.SpanContextFromContext(req.Context()))
			mu.Unlock()
			return http.DefaultTransport.RoundTrip(req)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	saved := a.srv.Grant() // the server's secrets, to look for below
	a.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(100 * time.Millisecond) // let the storm join the refresh
		next.ServeHTTP(w, r)
	})
	a.clock.Advance(time.Hour)
	a.storm(30)
	a.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant"}`)
	})
	a.clock.Advance(time.Hour)
	if code := a.get("/"); code != http.StatusUnauthorized {
		t.Errorf("after invalid_grant: %d, want 401", code)
	}

	for k, v := range map[string]int64{
		"smartrefresh.refreshes{outcome=success,rotated=true}": 1,
		"smartrefresh.refreshes{outcome=reauth_required}":      1,
		"smartrefresh.reauths{reason=invalid_grant}":           1,
		"smartrefresh.refresh.waiters{}":                       shared,
	} {
		if got := rec.sum(k); got != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got, v, rec.sums)
		}
	}
	t.Logf("%d of the storm's 30 requests waited on the refresh another started", shared)
	if n := rec.counts["smartrefresh.refresh.duration{outcome=success}"] + rec.counts["smartrefresh.refresh.duration{outcome=reauth_required}"]; n != 2 {
		t.Errorf("duration histogram count = %d, want 2", n)
	}
	if !slices.Equal(hooks, []string{"refresh", "error", "reauth"}) {
		t.Errorf("the app's hooks heard %q, want refresh, error, reauth", hooks)
	}
	spans := rec.ended()
	if len(spans) != 2 || spans[0].name != "smartrefresh.refresh" || spans[1].name != "smartrefresh.refresh" {
		t.Fatalf("spans: %+v", spans)
	}
	if len(tokenCallSpans) != 2 || !tokenCallSpans[0].Equal(spans[0].self) || !tokenCallSpans[1].Equal(spans[1].self) {
		t.Errorf("token requests ran in spans %v, want the refresh spans %v and %v", tokenCallSpans, spans[0].self, spans[1].self)
	}
	for _, s := range spans {
		for _, kv := range s.attrs {
			for _, secret := range []string{saved.AccessToken, saved.RefreshToken, a.srv.Options().ClientSecret} {
				if strings.Contains(kv.Value.Emit(), secret) {
					t.Errorf("span attribute %s leaks a secret", kv.Key)
				}
			}
		}
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestNewError: a MeterProvider that cannot make an instrument makes New
// fail with its error.
func TestNewError(t *testing.T) {
	_, err := smartotel.New(smartotel.Config{MeterProvider: failingProvider{newRecorder()}})
	if !errors.Is(err, errNoInstrument) {
		t.Fatalf("New: %v, want errNoInstrument", err)
	}
}

var errNoInstrument = fmt.Errorf("no instrument")

type failingProvider struct{ *recorder }

func (p failingProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return failingMeter{p.recorder.Meter(name, opts...).(recMeter)}
}

type failingMeter struct{ recMeter }

func (failingMeter) Float64Histogram(string, ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return nil, errNoInstrument
}
