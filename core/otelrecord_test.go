package core_test

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// otelRecorder is a MeterProvider and TracerProvider, written on the OTel
// API alone, that records what the refresher reports: the sum of each
// counter by attribute set, the count of each histogram, and each ended
// span's name and attributes. The tests use it instead of the OTel SDK so
// that the module requires the OTel API only.
type otelRecorder struct {
	metricnoop.MeterProvider
	tracenoop.TracerProvider

	mu     sync.Mutex
	sums   map[string]int64 // instrument name + "/" + outcome / reason
	counts map[string]uint64
	spans  []recordedSpan
}

type recordedSpan struct {
	name  string
	attrs []attribute.KeyValue
}

func newOTelRecorder() *otelRecorder {
	return &otelRecorder{sums: map[string]int64{}, counts: map[string]uint64{}}
}

func (o *otelRecorder) Meter(string, ...metric.MeterOption) metric.Meter {
	return recMeter{o: o}
}

func (o *otelRecorder) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return recTracer{o: o}
}

// key names one data point the way the test compares them.
func key(name string, set attribute.Set) string {
	if v, ok := set.Value("outcome"); ok {
		name += "/" + v.AsString()
	}
	if v, ok := set.Value("reason"); ok {
		name += "/" + v.AsString()
	}
	return name
}

type recMeter struct {
	metricnoop.Meter
	o *otelRecorder
}

func (m recMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return recCounter{o: m.o, name: name}, nil
}

func (m recMeter) Float64Histogram(name string, _ ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return recHistogram{o: m.o, name: name}, nil
}

type recCounter struct {
	metricnoop.Int64Counter
	o    *otelRecorder
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
	o    *otelRecorder
	name string
}

func (h recHistogram) Record(context.Context, float64, ...metric.RecordOption) {
	h.o.mu.Lock()
	h.o.counts[h.name]++
	h.o.mu.Unlock()
}

type recTracer struct {
	tracenoop.Tracer
	o *otelRecorder
}

func (t recTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	s := &recSpan{o: t.o, name: name, attrs: cfg.Attributes()}
	return trace.ContextWithSpan(ctx, s), s
}

type recSpan struct {
	tracenoop.Span
	o     *otelRecorder
	name  string
	mu    sync.Mutex
	attrs []attribute.KeyValue
}

func (s *recSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.mu.Lock()
	s.attrs = append(s.attrs, kv...)
	s.mu.Unlock()
}

func (s *recSpan) End(...trace.SpanEndOption) {
	s.mu.Lock()
	rs := recordedSpan{name: s.name, attrs: append([]attribute.KeyValue(nil), s.attrs...)}
	s.mu.Unlock()
	s.o.mu.Lock()
	s.o.spans = append(s.o.spans, rs)
	s.o.mu.Unlock()
}

func (s *recSpan) IsRecording() bool { return true }
