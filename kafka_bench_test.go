package eventstream_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Benchmarks of Kafka mode against raw franz-go producing and consuming the
// same records, in the same run so that ratios survive a noisy machine:
//
//	go test -run '^$' -bench 'KafkaRawFranz(|CloudEvents|Compact)$|KafkaBusNoTelemetry' -benchtime 100000x -count 5 .
//
// They use the in-process kfake cluster, or the cluster named by
// EVENTSTREAM_KAFKA_BROKERS when it is set.

func benchBrokers(b *testing.B) []string {
	if v := os.Getenv(eventstreamtest.BrokersEnv); v != "" {
		return strings.Split(v, ",")
	}
	return eventstreamtest.KafkaCluster(b)
}

// payloadSize is the value size of every throughput benchmark: the raw
// baseline's opaque bytes and the JSON the bus writes for benchPayload.
const payloadSize = 100

// benchPayload is what the bus benchmarks emit: a struct whose JSON is
// payloadSize bytes for every n below 10^7.
type benchPayload struct {
	N   int    `json:"n"`
	Pad string `json:"pad"`
}

func newBenchPayload(i int) benchPayload {
	// {"n":NNNNNNN,"pad":"…"} is 22 bytes around the pad when n has 7 digits.
	return benchPayload{N: 1000000 + i%9000000, Pad: strings.Repeat("x", payloadSize-22)}
}

// cloudEventsRecord is a record in the bus's default format, as a careful
// franz-go user would write it by hand: the JSON value, the constant
// CloudEvents headers shared by every record, the id and the time in one
// buffer of the record's own.
func cloudEventsRecord(topic string, value []byte, i int) *kgo.Record {
	now := time.Now()
	buf := make([]byte, 0, 36+30)
	buf = append(buf, "01a21c8d-b0b8-7402-abfa-"...)
	buf = strconv.AppendInt(buf, 100000000000+int64(i), 10)
	id := buf[:len(buf):len(buf)]
	buf = now.UTC().AppendFormat(buf, time.RFC3339Nano)
	return &kgo.Record{Topic: topic, Value: value, Timestamp: now, Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: ceSpecVersion},
		{Key: "ce_id", Value: id},
		{Key: "ce_time", Value: buf[len(id):]},
		{Key: "ce_source", Value: ceSource},
		{Key: "ce_type", Value: []byte(topic)},
		{Key: "content-type", Value: ceContentType},
	}}
}

var (
	ceSpecVersion = []byte("1.0")
	ceSource      = []byte("/eventstream/eventstream")
	ceContentType = []byte("application/json")
)

// rawFormat builds the i-th record of a raw benchmark.
type rawFormat func(topic string, i int) *kgo.Record

// opaqueRecords are payloadSize bytes of the same buffer, no key, no
// headers: the limit of what a client can do.
func opaqueRecords() rawFormat {
	value := make([]byte, payloadSize)
	return func(topic string, _ int) *kgo.Record { return &kgo.Record{Topic: topic, Value: value} }
}

// cloudEventsRecords are records in the bus's default format with the
// bus's payload: the format's own cost, without the bus.
func cloudEventsRecords() rawFormat {
	value, _ := json.Marshal(newBenchPayload(0))
	return func(topic string, i int) *kgo.Record { return cloudEventsRecord(topic, value, i) }
}

// compactRecords are records in the bus's compact format with the bus's
// payload: the compact header (version, flags, Unix seconds and
// nanoseconds, the id) and the JSON value.
func compactRecords() rawFormat {
	value, _ := json.Marshal(newBenchPayload(0))
	return func(topic string, i int) *kgo.Record {
		now := time.Now()
		h := make([]byte, 0, 14+36)
		h = append(h, 1, 0)
		h = binary.BigEndian.AppendUint64(h, uint64(now.Unix()))
		h = binary.BigEndian.AppendUint32(h, uint32(now.Nanosecond()))
		h = append(h, "01a21c8d-b0b8-7402-abfa-"...)
		h = strconv.AppendInt(h, 100000000000+int64(i), 10)
		return &kgo.Record{Topic: topic, Value: value, Timestamp: now,
			Headers: []kgo.RecordHeader{{Key: "eventstream", Value: h}}}
	}
}

// benchRaw produces b.N records asynchronously with one client and
// consumes them in a consumer group with another: the baseline.
func benchRaw(b *testing.B, format rawFormat, hooks ...kgo.Hook) {
	brokers := benchBrokers(b)
	topic := "bench-raw-" + strconv.Itoa(b.N) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	createTopic(b, brokers, topic, 3)
	var opts []kgo.Opt
	if len(hooks) > 0 {
		opts = append(opts, kgo.WithHooks(hooks...))
	}
	prod := rawClient(b, brokers, append(opts, kgo.ProducerLinger(0))...)
	assigned := make(chan struct{})
	var once sync.Once
	cons := rawClient(b, brokers, append(opts, kgo.ConsumerGroup(topic), kgo.ConsumeTopics(topic),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { once.Do(func() { close(assigned) }) }))...)
	<-assigned // joined before the clock starts, as On does
	time.Sleep(100 * time.Millisecond)
	var consumed atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	ctx := context.Background()
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	cpu := startCPU()
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for consumed.Load() < target {
			fs := cons.PollFetches(ctx)
			fs.EachRecord(func(*kgo.Record) { consumed.Add(1) })
		}
		close(done)
	}()
	for i := 0; i < b.N; i++ {
		prod.Produce(ctx, format(topic, i), promise)
	}
	<-done
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d produces failed", failed.Load())
	}
	cpu.report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// benchKafkaBus emits b.N events of payloadSize bytes asynchronously
// through the bus and waits until the handler has seen them all.
func benchKafkaBus(b *testing.B, kc func(*eventstream.KafkaConfig), opts ...eventstream.Option) {
	brokers := benchBrokers(b)
	topic := "bench-bus-" + strconv.Itoa(b.N) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	createTopic(b, brokers, topic, 3)
	cfg := eventstream.DefaultDistributedConfig(brokers)
	if kc != nil {
		kc(cfg.Kafka)
	}
	bus, err := eventstream.New(cfg, append([]eventstream.Option{eventstream.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	var handled atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if handled.Add(1) == target {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var failed atomic.Int64
	async := eventstream.WithAsync(func(err error) {
		if err != nil {
			failed.Add(1)
		}
	})
	payload := newBenchPayload(0)
	ctx := context.Background()
	cpu := startCPU()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		payload.N = 1000000 + i%9000000
		if err := bus.Emit(ctx, topic, payload, async); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d emits failed", failed.Load())
	}
	cpu.report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// cpuClock reads the process's CPU time (user and system, every
// goroutine: on kfake that includes the in-process broker).
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{start: processCPU()} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N)/1e3, "cpu-µs/event")
}

// BenchmarkKafkaRawFranz: raw franz-go producing and consuming opaque
// 100-byte records, no headers: the limit of every throughput benchmark.
func BenchmarkKafkaRawFranz(b *testing.B) { benchRaw(b, opaqueRecords()) }

// BenchmarkKafkaRawFranzCloudEvents: raw franz-go producing and consuming
// records in the bus's default format (CloudEvents headers, the bus's
// 100-byte JSON): what the format itself costs franz-go.
func BenchmarkKafkaRawFranzCloudEvents(b *testing.B) { benchRaw(b, cloudEventsRecords()) }

// BenchmarkKafkaRawFranzCompact: raw franz-go producing and consuming
// records in the bus's compact format.
func BenchmarkKafkaRawFranzCompact(b *testing.B) { benchRaw(b, compactRecords()) }

// BenchmarkKafkaBusNoTelemetry: the bus with WithoutTelemetry and
// asynchronous Emits (the throughput path), default record format and
// configuration; target at least 0.5x BenchmarkKafkaRawFranz.
func BenchmarkKafkaBusNoTelemetry(b *testing.B) {
	benchKafkaBus(b, nil, eventstream.WithoutTelemetry())
}

// BenchmarkKafkaBusNoTelemetryDataNever: the default record format, with
// DecodeDataNever (handlers that call Unmarshal).
func BenchmarkKafkaBusNoTelemetryDataNever(b *testing.B) {
	benchKafkaBus(b, func(k *eventstream.KafkaConfig) { k.DecodeData = eventstream.DecodeDataNever },
		eventstream.WithoutTelemetry())
}

// BenchmarkKafkaBusNoTelemetryCompact: RecordFormatCompact and
// DecodeDataNever; target at least 0.8x BenchmarkKafkaRawFranz.
func BenchmarkKafkaBusNoTelemetryCompact(b *testing.B) {
	benchKafkaBus(b, func(k *eventstream.KafkaConfig) {
		k.RecordFormat = eventstream.RecordFormatCompact
		k.DecodeData = eventstream.DecodeDataNever
	}, eventstream.WithoutTelemetry())
}

// benchProviders are SDK providers as in production, sampling everything
// and batching spans for export, minus the exporter's I/O: the same for the
// bus and for the kotel baseline.
func benchProviders(b *testing.B) (*sdktrace.TracerProvider, *sdkmetric.MeterProvider) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return tp, mp
}

// BenchmarkKafkaRawFranzKotel: raw franz-go with kotel's tracing hooks on
// both clients (the baseline of BenchmarkKafkaBusInstrumented).
func BenchmarkKafkaRawFranzKotel(b *testing.B) {
	tp, _ := benchProviders(b)
	kt := kotel.NewTracer(kotel.TracerProvider(tp),
		kotel.TracerPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))
	benchRaw(b, cloudEventsRecords(), kotel.NewKotel(kotel.WithTracer(kt)).Hooks()...)
}

// BenchmarkKafkaBusInstrumented: the bus fully instrumented (spans,
// metrics, history and stats, kotel's meter); target at least
// BenchmarkKafkaRawFranzKotel.
func BenchmarkKafkaBusInstrumented(b *testing.B) {
	tp, mp := benchProviders(b)
	benchKafkaBus(b, nil, eventstream.WithTracerProvider(tp), eventstream.WithMeterProvider(mp))
}

// BenchmarkKafkaLatency measures Emit→handler latency at 5,000 events/s
// with a 100ms FetchMaxWait, reporting p50 and p99 (target p99 ≤ 2ms on
// kfake), with synchronous Emits (each waits for the broker's
// acknowledgement, one after another) and asynchronous ones
// (WithAsync). Run with -benchtime 10000x (two seconds of
// traffic); BenchmarkKafkaRawFranzLatency is the baseline.
func BenchmarkKafkaLatency(b *testing.B) {
	for _, tc := range []struct {
		name  string
		async bool
		opts  []eventstream.Option
	}{
		{"NoTelemetry", false, []eventstream.Option{eventstream.WithoutTelemetry()}},
		{"Instrumented", false, nil},
		{"NoTelemetryAsync", true, []eventstream.Option{eventstream.WithoutTelemetry()}},
		{"InstrumentedAsync", true, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			opts := tc.opts
			if opts == nil {
				tp, mp := benchProviders(b)
				opts = []eventstream.Option{eventstream.WithTracerProvider(tp), eventstream.WithMeterProvider(mp)}
			}
			benchLatency(b, 5000, tc.async, opts...)
		})
	}
}

// BenchmarkKafkaRawFranzLatency is the baseline of BenchmarkKafkaLatency:
// raw franz-go producing synchronously at 5,000 records/s, a group consumer
// polling them, on the same cluster.
func BenchmarkKafkaRawFranzLatency(b *testing.B) {
	brokers := benchBrokers(b)
	topic := "bench-rawlat-" + strconv.Itoa(b.N) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	createTopic(b, brokers, topic, 3)
	prod := rawClient(b, brokers, kgo.ProducerLinger(0))
	assigned := make(chan struct{})
	var once sync.Once
	cons := rawClient(b, brokers, kgo.ConsumerGroup(topic), kgo.ConsumeTopics(topic), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { once.Do(func() { close(assigned) }) }))
	<-assigned
	lat := make([]time.Duration, 0, b.N)
	done := make(chan struct{})
	go func() {
		for len(lat) < b.N {
			cons.PollFetches(context.Background()).EachRecord(func(r *kgo.Record) {
				var v struct{ T int64 }
				_ = json.Unmarshal(r.Value, &v)
				lat = append(lat, time.Duration(time.Now().UnixNano()-v.T))
			})
		}
		close(done)
	}()
	b.ResetTimer()
	start := paced(b, 5000, func() error {
		v, _ := json.Marshal(map[string]int64{"t": time.Now().UnixNano()})
		return prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: v}).FirstErr()
	})
	<-done
	b.StopTimer()
	reportLatency(b, lat, start)
}

// paced calls emit b.N times at rate per second, each call stamped with
// its own start.
func paced(b *testing.B, rate int, emit func() error) (start time.Time) {
	interval := time.Second / time.Duration(rate)
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if err := emit(); err != nil {
			b.Fatal(err)
		}
	}
	return start
}

func reportLatency(b *testing.B, lat []time.Duration, start time.Time) {
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func benchLatency(b *testing.B, rate int, async bool, opts ...eventstream.Option) {
	brokers := benchBrokers(b)
	topic := "bench-lat-" + strconv.Itoa(b.N) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	createTopic(b, brokers, topic, 3)
	cfg := eventstream.DefaultDistributedConfig(brokers)
	cfg.Kafka.FetchMaxWait = 100 * time.Millisecond
	bus, err := eventstream.New(cfg, append([]eventstream.Option{eventstream.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	done := make(chan struct{})
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		var v struct{ T int64 }
		if err := e.Unmarshal(&v); err != nil {
			return err
		}
		d := time.Duration(time.Now().UnixNano() - v.T)
		mu.Lock()
		lat = append(lat, d)
		n := len(lat)
		mu.Unlock()
		if n == b.N {
			close(done)
		}
		return nil
	}, eventstream.WithConcurrency(3)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var emitOpts []eventstream.EmitOption
	if async {
		emitOpts = append(emitOpts, eventstream.WithAsync(func(err error) {
			if err != nil {
				b.Error(err)
			}
		}))
	}
	b.ResetTimer()
	start := paced(b, rate, func() error {
		return bus.Emit(ctx, topic, map[string]int64{"t": time.Now().UnixNano()}, emitOpts...)
	})
	<-done
	b.StopTimer()
	reportLatency(b, lat, start)
}
