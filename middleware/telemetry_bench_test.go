package middleware_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
	"libx.net/eventstream/telemetry"
)

// benchTelemetrySampler is the production-like setup: the given sampler, a batch span
// processor (to a discarding exporter) and a metric reader.
func benchTelemetrySampler(b *testing.B, sampler sdktrace.Sampler) (*telemetry.Telemetry, metric.MeterProvider) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Close() })
	return tel, mp
}

var sampled1pct = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))

var benchInfo = event.SubscriptionInfo{Topic: "orders", Group: "billing", Name: "billing#1", System: telemetry.SystemMemory}

// BenchmarkInstrumented runs one event through the instrumented emit chain
// (EmitTracing → EmitMetrics → no-op transport) and the consume chain
// (ConsumeMetrics → ProcessTracing → ProcessMetrics → no-op handler).
func BenchmarkInstrumented(b *testing.B) {
	tel, _ := benchTelemetrySampler(b, sdktrace.AlwaysSample())
	benchInstrumented(b, tel)
}

// BenchmarkInstrumentedSampled1pct is BenchmarkInstrumented at a 1%
// parent-based ratio.
func BenchmarkInstrumentedSampled1pct(b *testing.B) {
	tel, _ := benchTelemetrySampler(b, sampled1pct)
	benchInstrumented(b, tel)
}

func benchInstrumented(b *testing.B, tel *telemetry.Telemetry) {
	sub := tel.Subscription(benchInfo)
	emit := event.Chain(nop, middleware.EmitTracing(tel, "memory"), middleware.EmitMetrics(tel, "memory"))
	consume := event.Chain(nop, middleware.ConsumeMetrics(sub), middleware.ProcessTracing(sub), middleware.ProcessMetrics(sub))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := event.New("orders", nil)
			_ = emit(ctx, e)
			_ = consume(ctx, e)
		}
	})
}

// BenchmarkBareSDK makes the same OpenTelemetry calls by hand: the same two
// spans with the same attributes, the same propagation, the same metric
// records with pre-built attribute sets, and the same atomic counters behind
// the observable consumed.messages / in_flight instruments.
func BenchmarkBareSDK(b *testing.B) {
	tel, _ := benchTelemetrySampler(b, sdktrace.AlwaysSample())
	benchBareSDK(b, tel, nil)
}

// BenchmarkBareSDKSampled1pct is BenchmarkBareSDK at a 1% parent-based ratio.
func BenchmarkBareSDKSampled1pct(b *testing.B) {
	tel, _ := benchTelemetrySampler(b, sampled1pct)
	benchBareSDK(b, tel, nil)
}

// BenchmarkBareSDKSync is BenchmarkBareSDK with consumed.messages and
// in_flight as synchronous SDK instruments (three SDK calls per event instead
// of three atomic adds), i.e. the layer's calls before they became observable.
func BenchmarkBareSDKSync(b *testing.B) {
	tel, mp := benchTelemetrySampler(b, sdktrace.AlwaysSample())
	benchBareSDK(b, tel, mp.Meter("bare"))
}

// BenchmarkBareSDKSyncSampled1pct is BenchmarkBareSDKSync at 1%.
func BenchmarkBareSDKSyncSampled1pct(b *testing.B) {
	tel, mp := benchTelemetrySampler(b, sampled1pct)
	benchBareSDK(b, tel, mp.Meter("bare"))
}

func benchBareSDK(b *testing.B, tel *telemetry.Telemetry, syncMeter metric.Meter) {
	tracer, prop, in := tel.Tracer(), tel.Propagator(), tel.Instruments()
	var consumedN, inFlightN atomic.Int64
	var consumedC metric.Int64Counter
	var inFlightC metric.Int64UpDownCounter
	if syncMeter != nil {
		consumedC, _ = syncMeter.Int64Counter(telemetry.MetricConsumedMessages)
		inFlightC, _ = syncMeter.Int64UpDownCounter(telemetry.MetricInFlight)
	}
	sendKVs := []attribute.KeyValue{
		telemetry.KeySystem.String("memory"), telemetry.KeyOperationType.String("send"),
		telemetry.KeyOperationName.String("send"), telemetry.KeyDestination.String("orders"),
	}
	procKVs := []attribute.KeyValue{
		telemetry.KeySystem.String("memory"), telemetry.KeyOperationType.String("process"),
		telemetry.KeyOperationName.String("process"), telemetry.KeyDestination.String("orders"),
		telemetry.KeyConsumerGroup.String("billing"), telemetry.KeySubscription.String("billing#1"),
	}
	sendSet := metric.WithAttributeSet(attribute.NewSet(telemetry.KeySystem.String("memory"),
		telemetry.KeyOperationName.String("send"), telemetry.KeyDestination.String("orders")))
	procSet := metric.WithAttributeSet(attribute.NewSet(telemetry.KeySystem.String("memory"),
		telemetry.KeyOperationName.String("process"), telemetry.KeyDestination.String("orders"),
		telemetry.KeyConsumerGroup.String("billing")))
	baseSet := metric.WithAttributeSet(attribute.NewSet(telemetry.KeySystem.String("memory"),
		telemetry.KeyDestination.String("orders"), telemetry.KeyConsumerGroup.String("billing")))
	// Option slices built once, as a careful hand-written caller would.
	sendAdd, sendRec := []metric.AddOption{sendSet}, []metric.RecordOption{sendSet}
	procAdd, procRec := []metric.AddOption{procSet}, []metric.RecordOption{procSet}
	baseAdd, baseRec := []metric.AddOption{baseSet}, []metric.RecordOption{baseSet}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := event.New("orders", nil)

			attrs := make([]attribute.KeyValue, 0, len(sendKVs)+2)
			attrs = append(append(attrs, sendKVs...), telemetry.KeyMessageID.String(e.ID))
			sctx, span := tracer.Start(ctx, "send orders", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
			e.Headers = make(map[string]string, 2)
			prop.Inject(sctx, propagation.MapCarrier(e.Headers))
			start := time.Now()
			in.SentMessages.Add(sctx, 1, sendAdd...)
			in.OperationDuration.Record(sctx, time.Since(start).Seconds(), sendRec...)
			span.End()

			if syncMeter != nil {
				consumedC.Add(ctx, 1, procAdd...)
			} else {
				consumedN.Add(1)
			}
			in.DeliveryLatency.Record(ctx, time.Since(e.Time).Seconds(), baseRec...)
			if syncMeter != nil {
				inFlightC.Add(ctx, 1, baseAdd...)
			} else {
				inFlightN.Add(1)
			}
			pctx := prop.Extract(ctx, propagation.MapCarrier(e.Headers))
			attrs = make([]attribute.KeyValue, 0, len(procKVs)+2)
			attrs = append(append(attrs, procKVs...), telemetry.KeyMessageID.String(e.ID), telemetry.KeyAttempt.Int(1))
			pctx, span = tracer.Start(pctx, "process orders", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			start = time.Now()
			in.ProcessDuration.Record(pctx, time.Since(start).Seconds(), procRec...)
			span.End()
			if syncMeter != nil {
				inFlightC.Add(ctx, -1, baseAdd...)
			} else {
				inFlightN.Add(-1)
			}
		}
	})
}
