package eventstream_test

import (
	"context"
	"log/slog"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"libx.net/eventstream"
)

// discardExporter drops spans after the batch processor has done its work.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkMemoryDeliveredInstrumented: the whole telemetry on — SDK
// TracerProvider sampling every event into a batch processor, SDK
// MeterProvider with the stats reader, history on.
func BenchmarkMemoryDeliveredInstrumented(b *testing.B) {
	benchDeliveredTelemetry(b, sdktrace.AlwaysSample())
}

// BenchmarkMemoryDeliveredSampled1pct: the same at a 1% parent-based ratio.
func BenchmarkMemoryDeliveredSampled1pct(b *testing.B) {
	benchDeliveredTelemetry(b, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)))
}

func benchDeliveredTelemetry(b *testing.B, sampler sdktrace.Sampler) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(discardExporter{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	cfg := eventstream.DefaultConfig()
	bus, err := eventstream.New(cfg,
		eventstream.WithTracerProvider(tp), eventstream.WithMeterProvider(mp),
		eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	benchDelivered(b, bus, nil)
}
