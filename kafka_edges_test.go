package eventstream_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Regression tests of Kafka mode at its edges, through the public API.

// A dead letter the cluster will not take yet must not lose its event: with
// topic creation disabled and no dead-letter topic, the event stays
// uncommitted while the write is retried, and after Close the group's next
// member gets it again. (A record the producer refuses for its size is
// dead-lettered without its value: kafka_deadletter_test.go.)
func TestKafkaDeadLetterWriteFailureKeepsEvent(t *testing.T) {
	cases := []struct {
		name  string
		tune  func(*eventstream.Config)
		setup func(t *testing.T, brokers []string, topic string)
	}{{
		name: "no dead-letter topic",
		tune: func(c *eventstream.Config) { c.Kafka.DisableTopicCreation = true },
		setup: func(t *testing.T, brokers []string, topic string) {
			createTopic(t, brokers, topic, 1)
			if err := rawClient(t, brokers).ProduceSync(context.Background(),
				&kgo.Record{Topic: topic, Value: []byte(`{"order":1}`)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			brokers := eventstreamtest.KafkaCluster(t)
			topic := eventstreamtest.Topic(t)
			group := eventstream.WithConsumerGroup("dlq-fails-" + topic)
			tc.setup(t, brokers, topic)

			first := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
				c.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
				c.ShutdownTimeout = time.Second
				if tc.tune != nil {
					tc.tune(c)
				}
			})
			var attempts atomic.Int32
			if _, err := first.On(topic, func(context.Context, *eventstream.Event) error {
				attempts.Add(1)
				return eventstream.Permanent(errors.New("cannot handle"))
			}, group); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the handler ran", 20*time.Second, func() bool { return attempts.Load() > 0 })
			time.Sleep(time.Second) // several commit intervals while the dead letter fails
			_ = first.Close()       // the event is cut off: it is reported, not committed

			second := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
				c.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
			})
			got := newEvents()
			if _, err := second.On(topic, got.handler, group); err != nil {
				t.Fatal(err)
			}
			if e := got.wait(t, 1)[0]; e.Record.Offset != 0 {
				t.Fatalf("the next member got offset %d, want the event whose dead letter failed", e.Record.Offset)
			}
		})
	}
}

// Off from outside waits for the handler in flight, even past
// ShutdownTimeout, and its event is committed: the group's next member
// does not get it again.
func TestKafkaOffWaitsForHandler(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	group := eventstream.WithConsumerGroup("off-waits-" + topic)
	b := quietKafkaBus(t, brokers, func(c *eventstream.Config) { c.ShutdownTimeout = 100 * time.Millisecond })
	started, release := make(chan struct{}), make(chan struct{})
	sub, err := b.On(topic, func(context.Context, *eventstream.Event) error {
		close(started)
		<-release
		return nil
	}, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "slow"); err != nil {
		t.Fatal(err)
	}
	<-started
	returned := make(chan error, 1)
	go func() { returned <- b.Off(sub) }()
	select {
	case err := <-returned:
		t.Fatalf("Off returned (%v) while its handler ran", err)
	case <-time.After(500 * time.Millisecond): // five ShutdownTimeouts
	}
	close(release)
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Off did not return after its handler did")
	}

	next := newEvents()
	if _, err := b.On(topic, next.handler, group); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "after"); err != nil {
		t.Fatal(err)
	}
	if e := next.wait(t, 1)[0]; e.Data != "after" {
		t.Fatalf("the next member got %v first: the handled event was not committed", e.Data)
	}
}

// Off from the subscription's own handler returns once the other handler
// in flight is done, and does not wait for the handler calling it.
func TestKafkaOffFromOwnHandler(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	b := quietKafkaBus(t, brokers, nil)
	var sub eventstream.Subscription
	subSet := make(chan struct{})
	otherStarted := make(chan struct{})
	var otherDone atomic.Int64
	type result struct {
		err error
		at  int64
	}
	off := make(chan result, 1)
	s, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
		if e.Data == "other" {
			close(otherStarted)
			time.Sleep(300 * time.Millisecond)
			otherDone.Store(time.Now().UnixNano())
			return nil
		}
		<-otherStarted
		<-subSet
		err := b.Off(sub)
		off <- result{err, time.Now().UnixNano()}
		return nil
	}, eventstream.WithConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	sub = s
	close(subSet)
	// Keyless events of one partition alternate between the two lanes.
	for _, v := range []string{"caller", "other"} {
		if err := b.Emit(context.Background(), topic, v); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-off:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if done := otherDone.Load(); done == 0 || r.at < done {
			t.Fatal("Off returned before the other handler in flight finished")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Off from the subscription's own handler did not return")
	}
}

// A handler that ends its goroutine (t.FailNow does) does not wedge its
// subscription: the event is dead-lettered and the next ones are handled.
func TestKafkaGoexitInHandler(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	b := quietKafkaBus(t, brokers, func(c *eventstream.Config) { c.Pool.Size = 1 })
	dlq, got := newEvents(), newEvents()
	if _, err := b.On(topic+".dlq", dlq.handler); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if e.Data == "exit" {
			runtime.Goexit()
		}
		return got.handler(ctx, e)
	}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"exit", "a", "b"} {
		if err := b.Emit(context.Background(), topic, v); err != nil {
			t.Fatal(err)
		}
	}
	if evs := got.wait(t, 2); evs[0].Data != "a" || evs[1].Data != "b" {
		t.Fatalf("handled %v, %v", evs[0].Data, evs[1].Data)
	}
	if d := dlq.wait(t, 1)[0]; d.Data != "exit" {
		t.Fatalf("dead letter %v", d.Data)
	}
}

// A topic of the cluster whose "<topic>.dlq" would be too long stays
// writable: a bus with dead letters on emits to it, and a subscriber
// without dead letters (elsewhere) reads it.
func TestKafkaEmitToTopicWithoutValidDeadLetterTopic(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	topic += strings.Repeat("x", 249-len(topic))
	createTopic(t, brokers, topic, 1)
	reader := quietKafkaBus(t, brokers, nil, eventstream.WithoutDeadLetter())
	got := newEvents()
	if _, err := reader.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	writer := quietKafkaBus(t, brokers, nil)
	if _, err := writer.On(topic, got.handler); !errors.Is(err, eventstream.ErrInvalidTopic) {
		t.Errorf("On with dead letters on: %v", err)
	}
	if err := writer.Emit(context.Background(), topic, "long"); err != nil {
		t.Fatalf("Emit: %v", err)
	}
	if e := got.wait(t, 1)[0]; e.Data != "long" {
		t.Fatalf("got %v", e.Data)
	}
}

// Off(B) from a handler of A waits for B's handler in flight: being in some
// handler of the bus is not being in one of B's.
func TestKafkaOffFromOtherHandlerWaitsForIt(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topicA, topicB := eventstreamtest.Topic(t)+"-a", eventstreamtest.Topic(t)+"-b"
	createTopic(t, brokers, topicA, 1)
	createTopic(t, brokers, topicB, 1)
	b := quietKafkaBus(t, brokers, nil)
	bStarted := make(chan struct{})
	var bDone atomic.Int64
	subB, err := b.On(topicB, func(context.Context, *eventstream.Event) error {
		close(bStarted)
		time.Sleep(300 * time.Millisecond)
		bDone.Store(time.Now().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		err error
		at  int64
	}
	off := make(chan result, 1)
	if _, err := b.On(topicA, func(context.Context, *eventstream.Event) error {
		<-bStarted
		err := b.Off(subB)
		off <- result{err, time.Now().UnixNano()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{topicB, topicA} {
		if err := b.Emit(context.Background(), topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-off:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if done := bDone.Load(); done == 0 || r.at < done {
			t.Fatal("Off(B) from A's handler returned before B's handler in flight finished")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Off(B) from A's handler did not return")
	}
}
