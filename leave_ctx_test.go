package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// A handler whose context ends because its subscription leaves (Off past
// its shutdown timeout, a Kafka revoke) answers "not done" with the
// context's error: the event goes back to its group, neither failed,
// retried nor dead-lettered.

// stuckHandler blocks until its context ends and answers with its error;
// started receives each event it got.
func stuckHandler(started chan<- *eventstream.Event) eventstream.EventHandler {
	return func(ctx context.Context, e *eventstream.Event) error {
		started <- e
		<-ctx.Done()
		return fmt.Errorf("gave up: %w", ctx.Err())
	}
}

// testOffHandsBackStuck: member A holds the event in a handler stuck on
// its context; Off(A) runs out its shutdown timeout, A's handler answers
// with its context's error, and member B gets the event, once, with no
// dead letter.
func testOffHandsBackStuck(t *testing.T, b eventstream.EventBus, key string) {
	topic := eventstreamtest.Topic(t)
	group := "g-" + topic
	var dead atomic.Int32
	if _, err := b.On(topic+".dlq", func(context.Context, *eventstream.Event) error {
		dead.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	started := make(chan *eventstream.Event, 4)
	a, err := b.On(topic, stuckHandler(started), eventstream.WithConsumerGroup(group))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "x", eventstream.WithKey(key)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("A never got the event")
	}
	got := make(chan *eventstream.Event, 4)
	if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
		got <- e
		return nil
	}, eventstream.WithConsumerGroup(group)); err != nil {
		t.Fatal(err)
	}
	if err := b.Off(a); err != nil {
		t.Fatalf("Off = %v, want nil: the event had another member to go to", err)
	}
	select {
	case e := <-got:
		if e.Redelivery > 1 {
			t.Fatalf("Redelivery %d", e.Redelivery)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the event A handed back never reached B")
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(got); n != 0 {
		t.Fatalf("B got the event %d more times", n)
	}
	if n := dead.Load(); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
	if mb, ok := b.(eventstream.MemoryEventBus); ok {
		row := rowOf(mb.GetStats(), topic, group)
		if row.Failed != 0 || row.Retried != 0 || row.DeadLettered != 0 {
			t.Fatalf("stats %+v: a hand-back on leaving is not a failure", row.Counts)
		}
	}
}

func TestOffHandsBackStuckHandler(t *testing.T) {
	for _, key := range []string{"", "k"} {
		t.Run("key="+key, func(t *testing.T) {
			eachMode(t, func(c *eventstream.Config) { c.ShutdownTimeout = 200 * time.Millisecond },
				func(t *testing.T, b eventstream.EventBus) { testOffHandsBackStuck(t, b, key) })
		})
	}
}

// TestOffLastMemberCountsStuck: with no member left to take it, the event
// a stuck handler hands back is counted by Off, not dead-lettered.
func TestOffLastMemberCountsStuck(t *testing.T) {
	cfg := smallConfig(2, 16)
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b := quietBus(t, cfg)
	defer b.Close()
	topic := eventstreamtest.Topic(t)
	var dead atomic.Int32
	if _, err := b.On(topic+".dlq", func(context.Context, *eventstream.Event) error {
		dead.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	started := make(chan *eventstream.Event, 1)
	a, err := b.On(topic, stuckHandler(started))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "x"); err != nil {
		t.Fatal(err)
	}
	<-started
	err = b.Off(a)
	var se *eventstream.ShutdownError
	if !errors.As(err, &se) || se.Unhandled != 1 {
		t.Fatalf("Off = %v, want a ShutdownError counting the one event", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := dead.Load(); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
}

// TestKafkaRevokeHandsBackStuck: a second member joins, the first loses a
// partition whose record its handler holds; the handler's context ends
// and the record goes, uncommitted, to the new owner — not to the
// dead-letter topic.
func TestKafkaRevokeHandsBackStuck(t *testing.T) {
	testKafkaRevokeHandsBackStuck(t, eventstreamtest.KafkaCluster(t))
}

// TestKafkaRealRevokeHandsBackStuck is the same on a real broker.
func TestKafkaRealRevokeHandsBackStuck(t *testing.T) {
	testKafkaRevokeHandsBackStuck(t, eventstreamtest.RealKafkaBrokers(t))
}

func testKafkaRevokeHandsBackStuck(t *testing.T, brokers []string) {
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 2)
	cfg := kafkaTestConfig(brokers)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	cfg.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
	b := quietBus(t, cfg)
	defer b.Close()
	group := "g-" + topic
	var dead atomic.Int32
	if _, err := b.On(topic+".dlq", func(context.Context, *eventstream.Event) error {
		dead.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	started := make(chan *eventstream.Event, 4*n)
	var ended atomic.Int32
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		started <- e
		<-ctx.Done()
		ended.Add(1)
		return ctx.Err()
	}, eventstream.WithConsumerGroup(group), eventstream.WithConcurrency(n)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := b.Emit(context.Background(), topic, i, eventstream.WithKey(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Each partition has a record in a stuck handler: whichever partition
	// moves, its record is in hand.
	parts := map[int32]bool{}
	waitFor(t, "the first member to hold a record of each partition", 30*time.Second, func() bool {
		for len(started) > 0 {
			parts[(<-started).Record.Partition] = true
		}
		return len(parts) == 2
	})
	got := make(chan *eventstream.Event, 4*n)
	if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
		got <- e
		return nil
	}, eventstream.WithConsumerGroup(group)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Record == nil {
			t.Fatal("no record")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the new owner never got a revoked partition's record")
	}
	waitFor(t, "a handler of the first member to see its context end", 10*time.Second, func() bool { return ended.Load() > 0 })
	if n := dead.Load(); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
}
