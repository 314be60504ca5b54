package peers_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Benchmarks of the bus against its limits and its peers, all in one run so
// that ratios survive a noisy machine:
//
//	go test -run '^$' -bench . -count 5
//
// Every benchmark counts deliveries, end to end: the clock runs from the
// first publish until the consumer has seen all b.N events, and events/s is
// b.N over that time. Kafka benchmarks run on kfake, and on the cluster
// named by EVENTSTREAM_KAFKA_BROKERS too when it is set (sub-benchmarks
// kfake and broker), with topics of three partitions and one consumer
// group member.

// benchData is the event every benchmark sends: its JSON is 100 bytes, the
// size of the raw franz-go records.
type benchData struct {
	Body string `json:"body"`
}

var (
	benchEvent = &benchData{Body: strings.Repeat("x", 89)}
	benchBytes = make([]byte, 100) // the opaque payload of raw records and watermill messages
)

func init() {
	if b, _ := json.Marshal(benchEvent); len(b) != len(benchBytes) {
		panic("benchEvent encodes to " + strconv.Itoa(len(b)) + " bytes, want 100")
	}
}

// cpuAtReset is the process's CPU time when the running benchmark's clock
// started (benchmarks run one at a time).
var cpuAtReset time.Duration

// resetTimer starts the clock, and the count of CPU time with it.
func resetTimer(b *testing.B) {
	cpuAtReset = processCPU()
	b.ResetTimer()
}

// reportRate reports deliveries per second and, because on a shared machine
// wall time depends on who else runs, the CPU time the whole process (both
// sides, the runtime and its GC) spent per event.
func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(processCPU()-cpuAtReset)/float64(b.N), "cpu-ns/event")
}

func discardLogger() eventstream.Option {
	return eventstream.WithLogger(slog.New(slog.DiscardHandler))
}

// BenchmarkChannelHandoff is the limit in one process: a pre-built pointer
// through a buffered channel to one receiving goroutine.
func BenchmarkChannelHandoff(b *testing.B) {
	ch := make(chan *benchData, 1000)
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
		ch <- benchEvent
	}
	close(ch)
	<-done
	b.StopTimer()
	if got != b.N {
		b.Fatalf("received %d of %d", got, b.N)
	}
	reportRate(b)
}

// BenchmarkMemoryBusDefault is the README's bus: DefaultConfig() (history
// and stats on), no option, OpenTelemetry not set up.
func BenchmarkMemoryBusDefault(b *testing.B) {
	benchMemoryBus(b)
}

// BenchmarkMemoryBusNoTelemetry is the same bus WithoutTelemetry().
func BenchmarkMemoryBusNoTelemetry(b *testing.B) {
	benchMemoryBus(b, eventstream.WithoutTelemetry())
}

func benchMemoryBus(b *testing.B, opts ...eventstream.Option) {
	bus, err := eventstream.New(eventstream.DefaultConfig(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := bus.Close(); err != nil {
			b.Error(err)
		}
	}()
	done := make(chan struct{})
	var got atomic.Int64
	target := int64(b.N)
	if _, err := bus.On("bench", func(_ context.Context, e *eventstream.Event) error {
		if got.Add(1) == target {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	resetTimer(b)
	for i := 0; i < b.N; i++ {
		if err := bus.Emit(ctx, "bench", benchEvent); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	reportRate(b)
}

// BenchmarkWatermillGoChannel is watermill's in-process Pub/Sub with its
// defaults, no telemetry, one subscriber that acknowledges every message.
// Each Publish builds a message with a UUID, as watermill's users do.
// Publish never waits (GoChannel hands each message to goroutines of its
// own), so under this flood a backlog of goroutines builds up and the rate
// falls somewhat as b.N grows; the bus instead makes Emit wait for room.
func BenchmarkWatermillGoChannel(b *testing.B) {
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer func() {
		if err := ps.Close(); err != nil {
			b.Error(err)
		}
	}()
	msgs, err := ps.Subscribe(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	target := b.N
	go func() {
		n := 0
		for msg := range msgs {
			msg.Ack()
			if n++; n == target {
				close(done)
			}
		}
	}()
	b.ReportAllocs()
	resetTimer(b)
	for i := 0; i < b.N; i++ {
		if err := ps.Publish("bench", message.NewMessage(watermill.NewUUID(), benchBytes)); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	reportRate(b)
}

// benchClusters runs f on kfake, and on the real cluster when
// EVENTSTREAM_KAFKA_BROKERS is set.
func benchClusters(b *testing.B, f func(b *testing.B, brokers []string)) {
	b.Run("kfake", func(b *testing.B) { f(b, eventstreamtest.KafkaCluster(b)) })
	if v := strings.TrimSpace(os.Getenv(eventstreamtest.BrokersEnv)); v != "" {
		b.Run("broker", func(b *testing.B) { f(b, strings.Split(v, ",")) })
	}
}

var benchSeq atomic.Int64

// benchTopic creates a fresh topic of three partitions.
func benchTopic(b *testing.B, brokers []string) string {
	b.Helper()
	topic := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(benchSeq.Add(1), 10)
	cl := franzClient(b, brokers)
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), 3, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.Fatalf("create topic %s: %v", topic, err)
	}
	return topic
}

func franzClient(b *testing.B, brokers []string, opts ...kgo.Opt) *kgo.Client {
	b.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl
}

// BenchmarkKafkaRawFranz is the limit on Kafka: franz-go producing opaque
// 100-byte records asynchronously (linger 0, as the bus's producer) and
// one consumer group member consuming them.
func BenchmarkKafkaRawFranz(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		topic := benchTopic(b, brokers)
		prod := franzClient(b, brokers, kgo.ProducerLinger(0))
		assigned := make(chan struct{})
		var once sync.Once
		cons := franzClient(b, brokers, kgo.ConsumerGroup(topic), kgo.ConsumeTopics(topic),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				once.Do(func() { close(assigned) })
			}))
		ctx := context.Background()
		<-assigned // joined before the clock starts, as the bus's On
		var consumed atomic.Int64
		done := make(chan struct{})
		target := int64(b.N)
		var failed atomic.Int64
		b.ReportAllocs()
		resetTimer(b)
		go func() {
			defer close(done)
			for consumed.Load() < target {
				fs := cons.PollFetches(ctx)
				if fs.IsClientClosed() {
					return
				}
				consumed.Add(int64(fs.NumRecords()))
			}
		}()
		for i := 0; i < b.N; i++ {
			prod.Produce(ctx, &kgo.Record{Topic: topic, Value: benchBytes}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
		<-done
		b.StopTimer()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d produces failed", n)
		}
		reportRate(b)
	})
}

// BenchmarkKafkaBusAsync is the bus's throughput path: Emit WithAsync,
// WithoutTelemetry, the default record format.
func BenchmarkKafkaBusAsync(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		var failed atomic.Int64
		async := eventstream.WithAsync(func(err error) {
			if err != nil {
				failed.Add(1)
			}
		})
		benchKafkaBus(b, brokers, 1, []eventstream.EmitOption{async}, eventstream.WithoutTelemetry())
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d emits failed", n)
		}
	})
}

// BenchmarkKafkaBusDefault64 is the README's Kafka bus:
// DefaultDistributedConfig, telemetry as it comes (history and stats on,
// OpenTelemetry not set up), each Emit waiting for the broker's
// acknowledgement, from 64 goroutines.
func BenchmarkKafkaBusDefault64(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		benchKafkaBus(b, brokers, 64, nil)
	})
}

func benchKafkaBus(b *testing.B, brokers []string, publishers int, emitOpts []eventstream.EmitOption, opts ...eventstream.Option) {
	topic := benchTopic(b, brokers)
	bus, err := eventstream.New(eventstream.DefaultDistributedConfig(brokers), append([]eventstream.Option{discardLogger()}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := bus.Close(); err != nil {
			b.Error(err)
		}
	}()
	done := make(chan struct{})
	var got atomic.Int64
	target := int64(b.N)
	if _, err := bus.On(topic, func(_ context.Context, e *eventstream.Event) error {
		if got.Add(1) == target {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	resetTimer(b)
	publish(b, publishers, func() error { return bus.Emit(ctx, topic, benchEvent, emitOpts...) })
	<-done
	b.StopTimer()
	reportRate(b)
}

// publish calls emit b.N times from the given number of goroutines.
func publish(b *testing.B, goroutines int, emit func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range goroutines {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := emit(); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// BenchmarkWatermillKafka64 is watermill-kafka v3 (Sarama) with its default
// configurations: a synchronous publisher called from 64 goroutines, one
// subscriber in a consumer group acknowledging every message.
func BenchmarkWatermillKafka64(b *testing.B) {
	benchClusters(b, func(b *testing.B, brokers []string) {
		topic := benchTopic(b, brokers)
		pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{Brokers: brokers, Marshaler: wmkafka.DefaultMarshaler{}}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			if err := pub.Close(); err != nil {
				b.Error(err)
			}
		}()
		scfg := wmkafka.DefaultSaramaSubscriberConfig()
		scfg.Consumer.Offsets.Initial = sarama.OffsetOldest // sees the warm-up message whenever it joins
		sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{Brokers: brokers, Unmarshaler: wmkafka.DefaultMarshaler{},
			OverwriteSaramaConfig: scfg, ConsumerGroup: topic}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			if err := sub.Close(); err != nil {
				b.Error(err)
			}
		}()
		msgs, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			b.Fatal(err)
		}
		// Joined before the clock starts: one message through, first.
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), benchBytes)); err != nil {
			b.Fatal(err)
		}
		select {
		case msg := <-msgs:
			msg.Ack()
		case <-time.After(time.Minute):
			b.Fatal("the warm-up message did not arrive within a minute")
		}
		done := make(chan struct{})
		target := b.N
		go func() {
			n := 0
			for msg := range msgs {
				msg.Ack()
				if n++; n == target {
					close(done)
				}
			}
		}()
		b.ReportAllocs()
		resetTimer(b)
		publish(b, 64, func() error {
			return pub.Publish(topic, message.NewMessage(watermill.NewUUID(), benchBytes))
		})
		<-done
		b.StopTimer()
		reportRate(b)
	})
}
