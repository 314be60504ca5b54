// Package otelsetup is the few lines a service writes to watch its events:
// traces over OTLP to Jaeger (or any OTLP collector) when one is configured,
// metrics on a Prometheus endpoint that serves OpenMetrics (so exemplars
// reach Prometheus), and slog lines with trace ids. The examples share it;
// copy it into your service.
package otelsetup

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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

	"libx.net/eventstream/telemetry"
)

// Setup is what Start built; Shutdown flushes and stops it.
type Setup struct {
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	Logger         *slog.Logger
	// Mux serves /metrics; mount more (e.g. /debug/eventstream/) on it.
	Mux *http.ServeMux
	// BaseURL is where Mux is served, e.g. "http://127.0.0.1:9464"; empty
	// when Start was given no address.
	BaseURL string
	// TraceEndpoint is where spans are exported; empty when no OTLP
	// endpoint is configured, in which case spans feed only the bus's
	// history.
	TraceEndpoint string
	server        *http.Server
}

// Start sets up telemetry for service. Traces go to the OTLP/HTTP endpoint
// named by OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT,
// and nowhere when neither is set (an exporter without a collector would
// only log failed exports); metrics are served on metricsAddr (e.g.
// ":9464") at /metrics. The providers also become the otel globals. Log
// lines are JSON on stderr, with durations written as "1.5ms" rather than
// as integer nanoseconds.
func Start(ctx context.Context, service, metricsAddr string) (*Setup, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(service)))
	if err != nil {
		return nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	endpoint := traceEndpoint()
	if endpoint != "" {
		// The exporter reads the endpoint variables itself; insecure
		// (plain HTTP) suits a local Jaeger, and an https:// endpoint
		// still uses TLS.
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithInsecure())
		if err != nil {
			return nil, err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	reg := prometheus.NewRegistry()
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(promExp))

	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(os.Stderr,
		&slog.HandlerOptions{ReplaceAttr: readableDurations}))).With("service", service)

	mux := http.NewServeMux()
	// OpenMetrics, so that the exemplars on latency buckets (trace ids)
	// reach Prometheus and Grafana can jump from a bucket to the trace.
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	s := &Setup{TracerProvider: tp, MeterProvider: mp, Logger: logger, Mux: mux, TraceEndpoint: endpoint}
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			_ = tp.Shutdown(ctx)
			_ = mp.Shutdown(ctx)
			return nil, err
		}
		s.BaseURL = baseURL(ln.Addr())
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

// traceEndpoint is the OTLP endpoint spans would go to, per the variables
// the exporter reads (the traces-specific one wins), or "" for none.
func traceEndpoint() string {
	if v := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		return v
	}
	if v := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		return v
	}
	return ""
}

// baseURL is a URL a browser on this host can open for addr: a listener on
// every interface (":9464") is reached through localhost.
func baseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}).String()
}

// readableDurations writes duration values as Go durations ("40ms"); the
// JSON handler would otherwise write them as integer nanoseconds.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
