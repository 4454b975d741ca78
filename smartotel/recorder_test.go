package smartotel_test

import (
	"context"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// recorder is a MeterProvider and TracerProvider, written on the OTel API
// alone, that records what the Observer reports: each instrument's
// definition, the sum of each counter and the count of each histogram by
// attribute set, and each ended span. The tests use it instead of the OTel
// SDK so that the module requires the OTel API only.
type recorder struct {
	metricnoop.MeterProvider
	tracenoop.TracerProvider

	mu          sync.Mutex
	scopes      []string              // meter and tracer names asked for
	instruments map[string]instrument // by name
	sums        map[string]int64      // name{attributes}
	counts      map[string]uint64     // name{attributes}
	spans       []recordedSpan
}

// instrument is an instrument's definition.
type instrument struct {
	kind, unit, description string
	buckets                 []float64
}

type recordedSpan struct {
	name        string
	kind        trace.SpanKind
	attrs       []attribute.KeyValue
	status      codes.Code
	description string
	parent      trace.SpanContext
	self        trace.SpanContext
}

func newRecorder() *recorder {
	return &recorder{instruments: map[string]instrument{}, sums: map[string]int64{}, counts: map[string]uint64{}}
}

func (o *recorder) Meter(name string, _ ...metric.MeterOption) metric.Meter {
	o.mu.Lock()
	o.scopes = append(o.scopes, "meter "+name)
	o.mu.Unlock()
	return recMeter{o: o}
}

func (o *recorder) Tracer(name string, _ ...trace.TracerOption) trace.Tracer {
	o.mu.Lock()
	o.scopes = append(o.scopes, "tracer "+name)
	o.mu.Unlock()
	return recTracer{o: o}
}

// key names one data point: the instrument and its attributes, sorted.
func key(name string, set attribute.Set) string {
	return name + "{" + set.Encoded(attribute.DefaultEncoder()) + "}"
}

func (o *recorder) sum(k string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sums[k]
}

func (o *recorder) ended() []recordedSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.spans)
}

type recMeter struct {
	metricnoop.Meter
	o *recorder
}

func (m recMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	cfg := metric.NewInt64CounterConfig(opts...)
	m.o.mu.Lock()
	m.o.instruments[name] = instrument{kind: "Int64Counter", unit: cfg.Unit(), description: cfg.Description()}
	m.o.mu.Unlock()
	return recCounter{o: m.o, name: name}, nil
}

func (m recMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	cfg := metric.NewFloat64HistogramConfig(opts...)
	m.o.mu.Lock()
	m.o.instruments[name] = instrument{kind: "Float64Histogram", unit: cfg.Unit(), description: cfg.Description(),
		buckets: cfg.ExplicitBucketBoundaries()}
	m.o.mu.Unlock()
	return recHistogram{o: m.o, name: name}, nil
}

type recCounter struct {
	metricnoop.Int64Counter
	o    *recorder
	name string
}

func (c recCounter) Add(_ context.Context, n int64, opts ...metric.AddOption) {
	set := metric.NewAddConfig(opts).Attributes()
	c.o.mu.Lock()
	c.o.sums[key(c.name, set)] += n
	c.o.mu.Unlock()
}

type recHistogram struct {
	metricnoop.Float64Histogram
	o    *recorder
	name string
}

func (h recHistogram) Record(_ context.Context, _ float64, opts ...metric.RecordOption) {
	set := metric.NewRecordConfig(opts).Attributes()
	h.o.mu.Lock()
	h.o.counts[key(h.name, set)]++
	h.o.mu.Unlock()
}

type recTracer struct {
	tracenoop.Tracer
	o *recorder
}

// spanIDs numbers the recorded spans, so that a child names its parent.
var (
	spanIDsMu sync.Mutex
	spanIDs   uint64
)

func (t recTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	spanIDsMu.Lock()
	spanIDs++
	var id trace.SpanID
	id[7] = byte(spanIDs)
	spanIDsMu.Unlock()
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: id})
	s := &recSpan{o: t.o, rs: recordedSpan{name: name, kind: cfg.SpanKind(), attrs: cfg.Attributes(),
		parent: trace.SpanContextFromContext(ctx), self: sc}}
	return trace.ContextWithSpan(ctx, s), s
}

type recSpan struct {
	tracenoop.Span
	o  *recorder
	mu sync.Mutex
	rs recordedSpan
}

func (s *recSpan) SpanContext() trace.SpanContext { return s.rs.self }

func (s *recSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.mu.Lock()
	s.rs.attrs = append(s.rs.attrs, kv...)
	s.mu.Unlock()
}

func (s *recSpan) SetStatus(code codes.Code, description string) {
	s.mu.Lock()
	s.rs.status, s.rs.description = code, description
	s.mu.Unlock()
}

func (s *recSpan) End(...trace.SpanEndOption) {
	s.mu.Lock()
	rs := s.rs
	rs.attrs = slices.Clone(s.rs.attrs)
	s.mu.Unlock()
	s.o.mu.Lock()
	s.o.spans = append(s.o.spans, rs)
	s.o.mu.Unlock()
}

func (s *recSpan) IsRecording() bool { return true }
