// Package otelsetup is the few lines a service writes to watch its events:
// traces over OTLP to Jaeger (or any OTLP collector), metrics on a
// Prometheus endpoint that serves OpenMetrics (so exemplars reach
// Prometheus), and slog lines with trace ids. The examples share it; copy it
// into your service.
package otelsetup

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"libx.net/eventstream/history"
	"libx.net/eventstream/telemetry"
)

// Setup is what Start built; Shutdown flushes and stops it.
type Setup struct {
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	Logger         *slog.Logger
	// Stats lets the bus's GetStats and debug page read MeterProvider:
	// pass it with eventstream.WithStatsReader.
	Stats *history.StatsReader
	// Mux serves /metrics; mount more (e.g. /debug/eventstream/) on it.
	Mux    *http.ServeMux
	server *http.Server
}

// Start sets up telemetry for service. Traces go to the OTLP/HTTP endpoint
// named by OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318);
// metrics are served on metricsAddr (e.g. ":9464") at /metrics. The
// providers also become the otel globals.
func Start(ctx context.Context, service, metricsAddr string) (*Setup, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(service)))
	if err != nil {
		return nil, err
	}
	// Reads OTEL_EXPORTER_OTLP_ENDPOINT itself; insecure for a local Jaeger.
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithInsecure())
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp,
		sdktrace.WithBatchTimeout(time.Second)))

	reg := prometheus.NewRegistry()
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	stats := history.NewStatsReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(promExp), sdkmetric.WithReader(stats.Reader()))

	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil))).With("service", service)

	mux := http.NewServeMux()
	// OpenMetrics, so that the exemplars on latency buckets (trace ids)
	// reach Prometheus and Grafana can jump from a bucket to the trace.
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	s := &Setup{TracerProvider: tp, MeterProvider: mp, Logger: logger, Stats: stats, Mux: mux}
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return nil, err
		}
		s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = s.server.Serve(ln) }()
	}
	return s, nil
}

// Shutdown stops the metrics server and flushes spans and metrics.
func (s *Setup) Shutdown(ctx context.Context) error {
	var errs []error
	if s.server != nil {
		errs = append(errs, s.server.Shutdown(ctx))
	}
	errs = append(errs, s.TracerProvider.Shutdown(ctx), s.MeterProvider.Shutdown(ctx))
	return errors.Join(errs...)
}
