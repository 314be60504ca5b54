package eventstream_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Dead letters the cluster refuses, or cannot take yet.

// produceTo writes records to fixed partitions with a raw client.
func produceTo(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		r.Context = nil
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// manualPartitions is a raw producer that writes each record to its
// Partition field.
func manualPartitions(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	return rawClient(t, brokers, append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
}

// partitionLog records the order in which a handler saw each partition's
// records.
type partitionLog struct {
	mu  sync.Mutex
	got map[int32][]int64
}

func (l *partitionLog) add(e *eventstream.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got == nil {
		l.got = map[int32][]int64{}
	}
	l.got[e.Record.Partition] = append(l.got[e.Record.Partition], e.Record.Offset)
}

func (l *partitionLog) count(p int32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got[p])
}

// inOrder fails the test if a partition's offsets were not handled in
// increasing order.
func (l *partitionLog) inOrder(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, offs := range l.got {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Fatalf("partition %d handled out of order: %v", p, offs)
			}
		}
	}
}

// A poison record that can never be dead-lettered as it is (2 MiB, not
// JSON, accepted by the broker compressed, refused by the bus's producer
// uncompressed) is dead-lettered without its value, with every header and
// where it lies; everything behind it is handled and the commit moves on.
func TestKafkaPoisonTooLargeToDeadLetter(t *testing.T) {
	testPoisonTooLarge(t, eventstreamtest.KafkaCluster(t))
}

func TestKafkaRealPoisonTooLargeToDeadLetter(t *testing.T) {
	testPoisonTooLarge(t, eventstreamtest.RealKafkaBrokers(t))
}

func testPoisonTooLarge(t *testing.T, brokers []string) {
	for _, tc := range []struct {
		name        string
		concurrency int
	}{{"concurrency 1", 1}, {"concurrency 4", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			topic := eventstreamtest.Topic(t)
			group := "poison-" + topic
			raw := manualPartitions(t, brokers, kgo.ProducerBatchMaxBytes(4<<20),
				kgo.ProducerBatchCompression(kgo.GzipCompression()))
			if _, err := kadm.NewClient(raw).CreateTopic(context.Background(), 3, -1,
				map[string]*string{"max.message.bytes": kadm.StringPtr("8388608")}, topic); err != nil {
				t.Fatal(err)
			}
			poison := &kgo.Record{Topic: topic, Partition: 0, Key: []byte("k0"),
				Value:   []byte(strings.Repeat("not json ", (2<<20)/9)),
				Headers: []kgo.RecordHeader{{Key: "x-origin", Value: []byte("legacy")}}}
			produceTo(t, raw, poison)
			const perPartition = 8
			for p := range int32(3) {
				for i := range perPartition {
					produceTo(t, raw, &kgo.Record{Topic: topic, Partition: p,
						Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
				}
			}

			b := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
				c.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
				c.Kafka.NonJSON = eventstream.NonJSONDeadLetter
			})
			var log partitionLog
			if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
				log.add(e)
				return nil
			}, eventstream.WithConsumerGroup(group), eventstream.WithConcurrency(tc.concurrency)); err != nil {
				t.Fatal(err)
			}
			dead := newEvents()
			if _, err := b.On(topic+".dlq", dead.handler, eventstream.WithConsumerGroup("dlq-"+group)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "every record behind the poison handled", 30*time.Second, func() bool {
				return log.count(0) == perPartition && log.count(1) == perPartition && log.count(2) == perPartition
			})
			if tc.concurrency == 1 {
				log.inOrder(t) // with more, only a key's records keep their order
			}

			dl := dead.wait(t, 1)[0]
			want := map[string]string{
				"x-origin":                               "legacy",
				eventstream.HeaderDeadLetterTopic:        topic,
				eventstream.HeaderDeadLetterPartition:    "0",
				eventstream.HeaderDeadLetterOffset:       "0",
				eventstream.HeaderDeadLetterValueOmitted: strconv.Itoa(len(poison.Value)),
				eventstream.HeaderDeadLetterGroup:        group,
				eventstream.HeaderDeadLetterAttempts:     "1",
			}
			for k, v := range want {
				if dl.Headers[k] != v {
					t.Errorf("dead letter header %s = %q, want %q", k, dl.Headers[k], v)
				}
			}
			if len(dl.Raw) != 0 {
				t.Errorf("the dead letter carries %d bytes of value, want none", len(dl.Raw))
			}
			if !strings.Contains(dl.Headers[eventstream.HeaderDeadLetterReason], "MESSAGE_TOO_LARGE") {
				t.Errorf("reason %q does not say the record was too large", dl.Headers[eventstream.HeaderDeadLetterReason])
			}

			// The commit moves past the poison.
			adm := kadm.NewClient(rawClient(t, brokers))
			waitFor(t, "partition 0 committed past the poison", 20*time.Second, func() bool {
				offs, err := adm.FetchOffsets(context.Background(), group)
				if err != nil {
					return false
				}
				o, ok := offs.Lookup(topic, 0)
				return ok && o.At == perPartition+1
			})
		})
	}
}

// A dead letter that cannot be written yet (topic creation disabled, no
// dead-letter topic) holds only its partition: the others' records are
// handled meanwhile, an operator sees it (eventstream.dead_letter.blocked,
// the event in flight), and once the topic exists the dead letter is
// written and the held records are handled, in order.
func TestKafkaBlockedDeadLetterHoldsOnlyItsPartition(t *testing.T) {
	for _, concurrency := range []int{1, 4} {
		t.Run("concurrency "+strconv.Itoa(concurrency), func(t *testing.T) {
			brokers := eventstreamtest.KafkaCluster(t)
			topic := eventstreamtest.Topic(t)
			group := "blocked-" + topic
			createTopic(t, brokers, topic, 3)
			raw := manualPartitions(t, brokers)
			rd := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
			t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
			b := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
				c.Kafka.DisableTopicCreation = true
				c.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
				c.ShutdownTimeout = time.Second
			}, eventstream.WithMeterProvider(mp))
			var log partitionLog
			if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
				if string(e.Raw) == `"poison"` {
					return eventstream.Permanent(errors.New("cannot handle"))
				}
				log.add(e)
				return nil
			}, eventstream.WithConsumerGroup(group), eventstream.WithConcurrency(concurrency)); err != nil {
				t.Fatal(err)
			}
			produceTo(t, raw, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("a"), Value: []byte(`"poison"`)})
			for i := range 4 {
				produceTo(t, raw, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("a"), Value: []byte(strconv.Itoa(i))})
			}
			time.Sleep(300 * time.Millisecond) // the poison's dead letter is failing
			for p := int32(1); p < 3; p++ {
				for i := range 4 {
					produceTo(t, raw, &kgo.Record{Topic: topic, Partition: p, Key: []byte("a"), Value: []byte(strconv.Itoa(i))})
				}
			}
			waitFor(t, "the other partitions handled while the dead letter waits", 10*time.Second, func() bool {
				return log.count(1) == 4 && log.count(2) == 4
			})
			if n := log.count(0); n != 0 {
				t.Fatalf("%d records behind the blocked dead letter were handled before it was written", n)
			}
			waitFor(t, "the blocked dead letter in the gauge and in flight", 10*time.Second, func() bool {
				m := collectMetrics(t, rd)
				return gaugeTotal(m["eventstream.dead_letter.blocked"]) == 1 && sumTotal(m["eventstream.in_flight"]) >= 1
			})

			createTopic(t, brokers, topic+".dlq", 1)
			for i := 4; i < 8; i++ { // racing the held records' return
				produceTo(t, raw, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("a"), Value: []byte(strconv.Itoa(i))})
			}
			waitFor(t, "the held records handled once the dead letter is written", 20*time.Second, func() bool {
				return log.count(0) == 8
			})
			log.inOrder(t)
			waitFor(t, "the gauge back to 0", 10*time.Second, func() bool {
				return gaugeTotal(collectMetrics(t, rd)["eventstream.dead_letter.blocked"]) == 0
			})
		})
	}
}

// Off and Close with a dead letter that cannot be written: each returns
// within ShutdownTimeout (and a margin), reports the event, and leaves it
// uncommitted, so the group's next member gets it.
func TestKafkaLeavingWithBlockedDeadLetter(t *testing.T) {
	for _, how := range []string{"Off", "Close"} {
		t.Run(how, func(t *testing.T) {
			brokers := eventstreamtest.KafkaCluster(t)
			topic := eventstreamtest.Topic(t)
			group := eventstream.WithConsumerGroup("leave-blocked-" + topic)
			createTopic(t, brokers, topic, 1)
			const timeout = time.Second
			b := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
				c.Kafka.DisableTopicCreation = true
				c.ShutdownTimeout = timeout
			})
			var handled sync.WaitGroup
			handled.Add(1)
			sub, err := b.On(topic, func(context.Context, *eventstream.Event) error {
				defer handled.Done()
				return eventstream.Permanent(errors.New("cannot handle"))
			}, group)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Emit(context.Background(), topic, "poison"); err != nil {
				t.Fatal(err)
			}
			handled.Wait()
			time.Sleep(200 * time.Millisecond) // a few failed writes

			start := time.Now()
			if how == "Off" {
				err = b.Off(sub)
			} else {
				err = b.Close()
			}
			took := time.Since(start)
			t.Logf("%s took %v: %v", how, took.Round(time.Millisecond), err)
			if took > timeout+closeMargin {
				t.Errorf("%s took %v with ShutdownTimeout %v", how, took, timeout)
			}
			var se *eventstream.ShutdownError
			if !errors.As(err, &se) || se.Unhandled < 1 {
				t.Errorf("%s = %v, want a ShutdownError counting the event", how, err)
			}

			next := newEvents()
			other := quietKafkaBus(t, brokers, nil)
			if _, err := other.On(topic, next.handler, group); err != nil {
				t.Fatal(err)
			}
			if e := next.wait(t, 1)[0]; e.Data != "poison" {
				t.Fatalf("the next member got %v, want the event left behind", e.Data)
			}
		})
	}
}

func sumTotal(m metricdata.Metrics) int64 {
	s, _ := m.Data.(metricdata.Sum[int64])
	var n int64
	for _, dp := range s.DataPoints {
		n += dp.Value
	}
	return n
}
