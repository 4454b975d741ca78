package demo

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// newMetrics returns an OpenTelemetry MeterProvider whose metrics the
// official Prometheus exporter publishes, and the handler of /metrics that
// serves them. The OpenTelemetry names become Prometheus names: the counter
// smartrefresh.refreshes is smartrefresh_refreshes_total, the histogram
// smartrefresh.refresh.duration (in s) is
// smartrefresh_refresh_duration_seconds.
//
// The registry is the App's own rather than Prometheus's global default
// one, so that several Apps in one process (as in the tests) never collide;
// it also holds the Go runtime and process collectors that promhttp.Handler
// would serve.
func newMetrics(service string) (*sdkmetric.MeterProvider, http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exporter),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}
