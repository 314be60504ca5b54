package telemetry_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/telemetry"
)

// benchProviders is the production-like setup: the given sampler, a batch
// span processor (to a discarding exporter) and a metric reader.
func benchProviders(b *testing.B, sampler sdktrace.Sampler) (*sdktrace.TracerProvider, *sdkmetric.MeterProvider) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return tp, mp
}

var sampled1pct = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))

// BenchmarkInstrumented runs one event through the bus's measurement
// points — emit (→ no-op transport), then delivery and one attempt (→ no-op
// handler) — over SDK providers that sample everything, with history and
// stats on as in DefaultConfig.
func BenchmarkInstrumented(b *testing.B) { benchInstrumented(b, sdktrace.AlwaysSample(), true) }

// BenchmarkInstrumentedSampled1pct is BenchmarkInstrumented at a 1%
// parent-based ratio.
func BenchmarkInstrumentedSampled1pct(b *testing.B) { benchInstrumented(b, sampled1pct, true) }

// BenchmarkInstrumentedNoHistory is BenchmarkInstrumented with history and
// stats off: only what the bare SDK calls below do, through the layer.
func BenchmarkInstrumentedNoHistory(b *testing.B) {
	benchInstrumented(b, sdktrace.AlwaysSample(), false)
}

func benchInstrumented(b *testing.B, sampler sdktrace.Sampler, views bool) {
	tp, mp := benchProviders(b, sampler)
	cfg := itel.Config{TracerProvider: tp, MeterProvider: mp, System: telemetry.SystemMemory, InProcess: true}
	if views {
		cfg.History, cfg.Stats = 10000, true
	}
	tel, err := itel.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	sub := tel.Subscription("orders", "billing", "billing#1", false)
	emit := event.Chain(nop, tel.Emit())
	consume := event.Chain(nop, sub.Consume, sub.Process)
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

// BenchmarkBareSDK makes the SDK calls the layer makes, by hand, as a
// careful caller would: the same two spans with the same attributes, the
// creation context handed to the process span directly (one process), the
// three histogram records with pre-built attribute sets, and atomic
// counters for the observable ones.
func BenchmarkBareSDK(b *testing.B) { benchBareSDK(b, sdktrace.AlwaysSample()) }

// BenchmarkBareSDKSampled1pct is BenchmarkBareSDK at a 1% parent-based
// ratio.
func BenchmarkBareSDKSampled1pct(b *testing.B) { benchBareSDK(b, sampled1pct) }

func benchBareSDK(b *testing.B, sampler sdktrace.Sampler) {
	tp, mp := benchProviders(b, sampler)
	tracer, meter := tp.Tracer("bare"), mp.Meter("bare")
	buckets := metric.WithExplicitBucketBoundaries(itel.DurationBuckets...)
	opDur, _ := meter.Float64Histogram(telemetry.MetricOperationDuration, buckets)
	procDur, _ := meter.Float64Histogram(telemetry.MetricProcessDuration, buckets)
	delivery, _ := meter.Float64Histogram(telemetry.MetricDeliveryLatency, buckets)
	var sent, consumed, inFlight atomic.Int64
	sendKVs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("memory"), semconv.MessagingOperationTypeKey.String("send"),
		semconv.MessagingOperationName("send"), semconv.MessagingDestinationName("orders"),
	}
	procKVs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("memory"), semconv.MessagingOperationTypeKey.String("process"),
		semconv.MessagingOperationName("process"), semconv.MessagingDestinationName("orders"),
		semconv.MessagingConsumerGroupName("billing"), attribute.String(telemetry.AttrSubscription, "billing#1"),
	}
	sendSet := metric.WithAttributeSet(attribute.NewSet(semconv.MessagingSystemKey.String("memory"),
		semconv.MessagingOperationName("send"), semconv.MessagingDestinationName("orders")))
	procSet := metric.WithAttributeSet(attribute.NewSet(semconv.MessagingSystemKey.String("memory"),
		semconv.MessagingOperationName("process"), semconv.MessagingDestinationName("orders"),
		semconv.MessagingConsumerGroupName("billing")))
	baseSet := metric.WithAttributeSet(attribute.NewSet(semconv.MessagingSystemKey.String("memory"),
		semconv.MessagingDestinationName("orders"), semconv.MessagingConsumerGroupName("billing")))
	// Option slices built once, as a careful hand-written caller would.
	sendRec, procRec, baseRec := []metric.RecordOption{sendSet}, []metric.RecordOption{procSet}, []metric.RecordOption{baseSet}
	producer, consumer := trace.WithSpanKind(trace.SpanKindProducer), trace.WithSpanKind(trace.SpanKindConsumer)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := event.New("orders", nil)

			attrs := make([]attribute.KeyValue, 0, len(sendKVs)+1)
			attrs = append(append(attrs, sendKVs...), semconv.MessagingMessageID(e.ID))
			sctx, span := tracer.Start(ctx, "send orders", producer, trace.WithAttributes(attrs...))
			sent.Add(1)
			opDur.Record(sctx, time.Since(e.Time).Seconds(), sendRec...)
			span.End()
			creation := span.SpanContext()

			consumed.Add(1)
			inFlight.Add(1)
			attrs = make([]attribute.KeyValue, 0, len(procKVs)+2)
			attrs = append(append(attrs, procKVs...), semconv.MessagingMessageID(e.ID), attribute.Int(telemetry.AttrAttempt, 1))
			pctx, pspan := tracer.Start(trace.ContextWithSpanContext(ctx, creation), "process orders",
				consumer, trace.WithAttributes(attrs...))
			start := time.Now()
			delivery.Record(pctx, start.Sub(e.Time).Seconds(), baseRec...)
			procDur.Record(pctx, time.Since(start).Seconds(), procRec...)
			pspan.End()
			inFlight.Add(-1)
		}
	})
}

func BenchmarkRingPut(b *testing.B) {
	tel, err := itel.New(itel.Config{System: "memory", InProcess: true, History: 10000})
	if err != nil {
		b.Fatal(err)
	}
	id := "01a2274c-7ade-7a5f-9a20-9ebe38a88fee"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		itel.PutSend(tel, id)
	}
}
