package peers_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
)

// Anchors: baselines that do the same work as the bus, by hand, measured
// in the same run so that the ratios mean something on a noisy machine:
//
//	go test -run '^$' -bench 'Anchor' -benchtime 200000x -count 3
//
// Pairs (bus / baseline):
//
//	AnchorKafkaBusAsync          / AnchorKafkaByHand        (telemetry off, asynchronous emits)
//	AnchorKafkaBusInstrumented   / AnchorKafkaByHandKotel   (SDK providers, AlwaysSample)
//	AnchorKafkaBusBlocking       / AnchorKafkaProduceSync   (the README's default, 64 blocking emitters)
//	AnchorMemoryBusNoTelemetry   / AnchorStampedFloor
//	AnchorMemoryBusDefault       / AnchorStampedFloor
//
// Kafka anchors run on kfake, and on the cluster named by
// EVENTSTREAM_KAFKA_BROKERS too when it is set; 64 goroutines emit, one
// consumer group member consumes, the clock stops when the last event is
// handled.

const anchorEmitters = 64

// stamp is what any bus that stamps its events pays per event: the clock,
// a UUIDv7 (48 bits of milliseconds, 12 of sub-millisecond time, 62
// random bits) as a string of its own.
func stamp() (string, time.Time) {
	now := time.Now()
	ns := now.UnixNano()
	var u [16]byte
	binary.BigEndian.PutUint64(u[0:8], uint64(ns/1e6)<<16|0x7<<12|uint64(ns%1e6)*4096/1e6)
	binary.BigEndian.PutUint64(u[8:16], rand.Uint64()>>2|1<<63)
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:]), now
}

// stampedEvent is a freshly allocated event as the floor hands it over.
type stampedEvent struct {
	ID   string
	Time time.Time
	Data any
}

// BenchmarkAnchorStampedFloor: a channel hand-off to one consumer of a
// freshly allocated event carrying the time and a UUIDv7 string id.
func BenchmarkAnchorStampedFloor(b *testing.B) {
	ch := make(chan *stampedEvent, 1000)
	var got int
	done := make(chan struct{})
	go func() {
		for range ch {
			got++
		}
		close(done)
	}()
	b.ReportAllocs()
	resetTimer(b)
	for i := 0; i < b.N; i++ {
		id, now := stamp()
		ch <- &stampedEvent{ID: id, Time: now, Data: benchEvent}
	}
	close(ch)
	<-done
	b.StopTimer()
	if got != b.N {
		b.Fatalf("received %d of %d", got, b.N)
	}
	reportRate(b)
}

// BenchmarkAnchorMemoryBusNoTelemetry and BenchmarkAnchorMemoryBusDefault
// are the memory bus against the floor (the same as MemoryBus*, named so
// that -bench Anchor runs every pair).
func BenchmarkAnchorMemoryBusNoTelemetry(b *testing.B) {
	benchMemoryBus(b, eventstream.WithoutTelemetry())
}

func BenchmarkAnchorMemoryBusDefault(b *testing.B) { benchMemoryBus(b) }

var (
	ceSpecVersion = []byte("1.0")
	ceSource      = []byte("/eventstream/eventstream")
	ceContentType = []byte("application/json")
)

// byHandRecord is what the bus writes by default, built by hand: the JSON
// of the payload, a UUIDv7 id, the time, the six CloudEvents binary-mode
// headers and the correlation id (the event's own id for an event that
// starts its chain, as every event here does), which the bus writes on
// every record so that other consumers need no rule for its absence.
func byHandRecord(topic string, data any) (*kgo.Record, error) {
	value, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	id, now := stamp()
	idBytes := []byte(id)
	return &kgo.Record{Topic: topic, Value: value, Timestamp: now, Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: ceSpecVersion},
		{Key: "ce_id", Value: idBytes},
		{Key: "ce_source", Value: ceSource},
		{Key: "ce_type", Value: []byte(topic)},
		{Key: "ce_time", Value: now.UTC().AppendFormat(nil, time.RFC3339Nano)},
		{Key: "content-type", Value: ceContentType},
		{Key: "ce_correlationid", Value: idBytes},
	}}, nil
}

// byHandConsume is what the bus must do with a record before its handler:
// the headers read into a map, ce_time parsed, the value decoded.
func byHandConsume(r *kgo.Record) error {
	headers := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		headers[h.Key] = string(h.Value)
	}
	if _, err := time.Parse(time.RFC3339Nano, headers["ce_time"]); err != nil {
		return err
	}
	var data any
	return json.Unmarshal(r.Value, &data)
}

// anchorProviders are SDK providers as in production, sampling everything
// and batching spans to an exporter that discards them.
func anchorProviders(b *testing.B) (*sdktrace.TracerProvider, *sdkmetric.MeterProvider) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return tp, mp
}

// BenchmarkAnchorKafkaByHand: franz-go doing the bus's work by hand,
// asynchronously (Produce from 64 goroutines, then Flush).
func BenchmarkAnchorKafkaByHand(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) { benchByHand(b, brokers, nil, nil, false) })
}

// BenchmarkAnchorKafkaByHandKotel: the same with kotel's tracer and meter
// on SDK providers; each record handled inside kotel's process span.
func BenchmarkAnchorKafkaByHandKotel(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		tp, mp := anchorProviders(b)
		kt := kotel.NewTracer(kotel.TracerProvider(tp),
			kotel.TracerPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))
		km := kotel.NewMeter(kotel.MeterProvider(mp))
		benchByHand(b, brokers, kt, kotel.NewKotel(kotel.WithTracer(kt), kotel.WithMeter(km)), false)
	})
}

// benchByHand produces the bus's records by hand from 64 goroutines —
// asynchronously (Produce with linger 0, then Flush) or blocking
// (ProduceSync on a default client) — and consumes them as the bus must,
// with kotel's hooks and process spans when k and kt are given.
func benchByHand(b *testing.B, brokers []string, kt *kotel.Tracer, k *kotel.Kotel, blocking bool) {
	topic := benchTopic(b, brokers)
	var hooks []kgo.Opt
	if k != nil {
		hooks = append(hooks, kgo.WithHooks(k.Hooks()...))
	}
	prodOpts := hooks
	if !blocking {
		prodOpts = append(prodOpts[:len(prodOpts):len(prodOpts)], kgo.ProducerLinger(0))
	}
	prod := franzClient(b, brokers, prodOpts...)
	assigned := make(chan struct{})
	var once sync.Once
	cons := franzClient(b, brokers, append(hooks, kgo.ConsumerGroup(topic), kgo.ConsumeTopics(topic),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			once.Do(func() { close(assigned) })
		}))...)
	<-assigned
	var handled, failed atomic.Int64
	target := int64(b.N)
	done := make(chan struct{})
	ctx := context.Background()
	b.ReportAllocs()
	resetTimer(b)
	go func() {
		defer close(done)
		for handled.Load() < target {
			fs := cons.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				if kt != nil {
					_, span := kt.WithProcessSpan(r)
					defer span.End()
				}
				if err := byHandConsume(r); err != nil {
					failed.Add(1)
				}
				handled.Add(1)
			})
		}
	}()
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	publish(b, anchorEmitters, func() error {
		r, err := byHandRecord(topic, benchEvent)
		if err != nil {
			return err
		}
		if blocking {
			return prod.ProduceSync(ctx, r).FirstErr()
		}
		prod.Produce(ctx, r, promise)
		return nil
	})
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d records failed", n)
	}
	reportRate(b)
}

// BenchmarkAnchorKafkaProduceSync: the blocking baseline, franz-go's
// ProduceSync from 64 goroutines with a default client (idempotent, acks
// from all in-sync replicas), consumed by one member.
func BenchmarkAnchorKafkaProduceSync(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) { benchByHand(b, brokers, nil, nil, true) })
}

// BenchmarkAnchorKafkaBusAsync: the bus WithoutTelemetry, Emit WithAsync
// from 64 goroutines (against AnchorKafkaByHand).
func BenchmarkAnchorKafkaBusAsync(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		benchKafkaBusAsync(b, brokers, eventstream.WithoutTelemetry())
	})
}

// BenchmarkAnchorKafkaBusInstrumented: the bus with SDK providers as the
// otel globals, Emit WithAsync from 64 goroutines (against
// AnchorKafkaByHandKotel).
func BenchmarkAnchorKafkaBusInstrumented(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		tp, mp := anchorProviders(b)
		prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		defer func() {
			otel.SetTracerProvider(prevTP)
			otel.SetMeterProvider(prevMP)
		}()
		benchKafkaBusAsync(b, brokers)
	})
}

// BenchmarkAnchorKafkaBusBlocking: the README's default
// (DefaultDistributedConfig, blocking Emit) from 64 goroutines (against
// AnchorKafkaProduceSync).
func BenchmarkAnchorKafkaBusBlocking(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		benchKafkaBus(b, brokers, anchorEmitters, nil)
	})
}

func benchKafkaBusAsync(b *testing.B, brokers []string, opts ...eventstream.Option) {
	var failed atomic.Int64
	async := eventstream.WithAsync(func(err error) {
		if err != nil {
			failed.Add(1)
		}
	})
	benchKafkaBus(b, brokers, anchorEmitters, []eventstream.EmitOption{async}, opts...)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d emits failed", n)
	}
}
