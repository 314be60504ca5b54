package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/history"
)

// A retry's backoff holds its lane, not a worker: the tests below run with
// one worker, where a sleeping retry would hold back every other topic.

// backoff returns a policy of one retry after d.
func backoff(d time.Duration) eventstream.SubscribeOption {
	return eventstream.WithRetryPolicy(&eventstream.RetryPolicy{MaxRetries: 1, BackoffStrategy: "constant", InitialDelay: d})
}

// retryScenario is the shared body of the memory and Kafka tests: with
// Pool.Size 1, event A0 on topic a fails once and waits out a 3 s backoff;
// A1 behind it in the same lane waits for it; 20 events on topic b are
// handled meanwhile, and the event waiting for its retry stays in flight.
type retryScenario struct {
	b          eventstream.EventBus
	topicA     string
	topicB     string
	groupA     string
	whileWaits func(t *testing.T) // extra checks while A0's retry waits
}

func (sc retryScenario) run(t *testing.T) {
	b := sc.b
	type step struct {
		what    string
		attempt int
	}
	var mu sync.Mutex
	var steps []step
	record := func(what string, attempt int) {
		mu.Lock()
		steps = append(steps, step{what, attempt})
		mu.Unlock()
	}
	failed := make(chan struct{})
	var retried atomic.Bool
	doneA := make(chan struct{})
	if _, err := b.On(sc.topicA, func(ctx context.Context, e *eventstream.Event) error {
		var v string
		if err := e.Unmarshal(&v); err != nil {
			return err
		}
		n := eventstream.Attempt(ctx)
		record(v, n)
		switch {
		case v == "A0" && n == 1:
			close(failed)
			return errors.New("not yet")
		case v == "A0":
			retried.Store(true)
		case v == "A1":
			close(doneA)
		}
		return nil
	}, eventstream.WithConsumerGroup(sc.groupA), backoff(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	var handledB atomic.Int32
	doneB := make(chan struct{})
	if _, err := b.On(sc.topicB, func(context.Context, *eventstream.Event) error {
		record("B", 1)
		if handledB.Add(1) == 20 {
			close(doneB)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []string{"A0", "A1"} {
		if err := b.Emit(ctx, sc.topicA, v); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-failed:
	case <-time.After(20 * time.Second):
		t.Fatal("A0 never ran")
	}
	for i := range 20 {
		if err := b.Emit(ctx, sc.topicB, i); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-doneB:
	case <-time.After(20 * time.Second):
		t.Fatalf("topic b handled %d of 20 events while A0's retry waited: its worker is held", handledB.Load())
	}
	if retried.Load() {
		t.Fatal("topic b waited until A0's retry ran: the backoff held the only worker")
	}
	stats := b.(eventstream.MemoryEventBus).GetStats()
	if got := rowOf(stats, sc.topicA, sc.groupA).InFlight; got != 1 {
		t.Errorf("in flight on topic a while A0's retry waits = %d, want 1", got)
	}
	if sc.whileWaits != nil {
		sc.whileWaits(t)
	}
	select {
	case <-doneA:
	case <-time.After(20 * time.Second):
		t.Fatal("A0's retry and A1 never ran")
	}
	mu.Lock()
	var order []string
	for _, s := range steps {
		if s.what != "B" {
			order = append(order, fmt.Sprintf("%s#%d", s.what, s.attempt))
		}
	}
	mu.Unlock()
	if want := "[A0#1 A0#2 A1#1]"; fmt.Sprint(order) != want {
		t.Fatalf("topic a ran %v, want %s: the lane's order broke", order, want)
	}
	waitFor(t, "the stats to settle", 5*time.Second, func() bool {
		row := rowOf(b.(eventstream.MemoryEventBus).GetStats(), sc.topicA, sc.groupA)
		return row.InFlight == 0 && row.Succeeded == 2
	})
	row := rowOf(b.(eventstream.MemoryEventBus).GetStats(), sc.topicA, sc.groupA)
	if row.Delivered != 2 || row.Failed != 1 || row.Retried != 1 {
		t.Fatalf("topic a stats %+v: want 2 delivered, 1 failed attempt, 1 retry", row.Counts)
	}
}

func rowOf(s eventstream.Stats, topic, group string) history.Row {
	for _, r := range s.Rows {
		if r.Topic == topic && r.Group == group {
			return r
		}
	}
	return history.Row{}
}

func TestRetryBackoffHoldsNoWorker(t *testing.T) {
	cfg := smallConfig(1, 64)
	b := quietBus(t, cfg)
	defer b.Close()
	topic := eventstreamtest.Topic(t)
	retryScenario{b: b, topicA: topic + ".a", topicB: topic + ".b", groupA: "g-" + topic}.run(t)
}

func TestKafkaRetryBackoffHoldsNoWorker(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	b := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
		c.Pool.Size = 1
		c.ShutdownTimeout = 10 * time.Second
	})
	topic := eventstreamtest.Topic(t)
	topicA, group := topic+".a", "g-"+topic
	createTopic(t, brokers, topicA, 1)
	retryScenario{b: b, topicA: topicA, topicB: topic + ".b", groupA: group,
		whileWaits: func(t *testing.T) {
			// Several commit intervals pass while A0 waits: nothing is
			// committed past it.
			time.Sleep(time.Second)
			offsets, err := kadm.NewClient(rawClient(t, brokers)).FetchOffsets(context.Background(), group)
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := offsets.Lookup(topicA, 0); ok && o.At > 0 {
				t.Fatalf("committed offset %d while the record at offset 0 waits for its retry", o.At)
			}
		}}.run(t)
}

// Under retries with backoff, a key's events still run one at a time and
// in emit order, with several lanes per subscription.
func testRetryKeepsKeyOrder(t *testing.T, b eventstream.EventBus) {
	const keys, perKey = 6, 25
	topic := eventstreamtest.Topic(t)
	var mu sync.Mutex
	next := map[string]int{}
	running := map[string]bool{}
	var done atomic.Int32
	all := make(chan struct{})
	var bad atomic.Value
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		var seq int
		if err := e.Unmarshal(&seq); err != nil {
			return err
		}
		mu.Lock()
		if running[e.Key] {
			bad.Store(fmt.Sprintf("key %s ran twice at once", e.Key))
		}
		if seq != next[e.Key] {
			bad.Store(fmt.Sprintf("key %s: got %d, want %d", e.Key, seq, next[e.Key]))
		}
		running[e.Key] = true
		mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		fail := seq%4 == 1 && eventstream.Attempt(ctx) < 3
		mu.Lock()
		running[e.Key] = false
		if !fail {
			next[e.Key]++
		}
		mu.Unlock()
		if fail {
			return errors.New("try again")
		}
		if done.Add(1) == keys*perKey {
			close(all)
		}
		return nil
	}, eventstream.WithConcurrency(4), eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: 3, BackoffStrategy: "constant", InitialDelay: 20 * time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	for i := range perKey {
		for k := range keys {
			if err := b.Emit(context.Background(), topic, i, eventstream.WithKey(fmt.Sprint("k", k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d", done.Load(), keys*perKey)
	}
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
}

func TestRetryKeepsKeyOrder(t *testing.T) {
	b := quietBus(t, smallConfig(2, 64))
	defer b.Close()
	testRetryKeepsKeyOrder(t, b)
}

func TestKafkaRetryKeepsKeyOrder(t *testing.T) {
	b := quietKafkaBus(t, eventstreamtest.KafkaCluster(t), func(c *eventstream.Config) { c.Pool.Size = 2 })
	testRetryKeepsKeyOrder(t, b)
}

// Close waits for a retry due within ShutdownTimeout, and handles it.
func TestCloseDrainsWaitingRetry(t *testing.T) {
	b := quietBus(t, smallConfig(1, 8))
	topic := eventstreamtest.Topic(t)
	var attempts atomic.Int32
	failed := make(chan struct{})
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if attempts.Add(1) == 1 {
			close(failed)
			return errors.New("not yet")
		}
		return nil
	}, backoff(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	<-failed
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want the retry run before Close returned", n)
	}
}

// A retry due after ShutdownTimeout is cut off: Close counts it, and it
// neither runs nor is dead-lettered after Close returned.
func TestCloseCutsWaitingRetry(t *testing.T) {
	cfg := smallConfig(1, 8)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	b := quietBus(t, cfg)
	topic := eventstreamtest.Topic(t)
	var attempts, dead atomic.Int32
	failed := make(chan struct{})
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if attempts.Add(1) == 1 {
			close(failed)
		}
		return errors.New("fails")
	}, backoff(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(topic+".dlq", func(context.Context, *eventstream.Event) error {
		dead.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	<-failed
	err := b.Close()
	var se *eventstream.ShutdownError
	if !errors.As(err, &se) || se.Unhandled != 1 {
		t.Fatalf("Close: %v, want a ShutdownError counting the waiting retry", err)
	}
	time.Sleep(1300 * time.Millisecond)
	if n, d := attempts.Load(), dead.Load(); n != 1 || d != 0 {
		t.Fatalf("after Close: %d attempts, %d dead letters; want 1 and 0", n, d)
	}
	if row := rowOf(b.(eventstream.MemoryEventBus).GetStats(), topic, topic+".sub-1"); row.InFlight != 0 {
		t.Fatalf("in flight %d after Close", row.InFlight)
	}
}

// Off of a member whose event waits for its retry hands the event to the
// group's other member once ShutdownTimeout is over.
func TestOffHandsWaitingRetryToGroup(t *testing.T) {
	cfg := smallConfig(1, 8)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	b := quietBus(t, cfg)
	defer b.Close()
	topic := eventstreamtest.Topic(t)
	group := eventstream.WithConsumerGroup("g-" + topic)
	failed := make(chan struct{})
	first, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		close(failed)
		return errors.New("fails here")
	}, group, backoff(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	<-failed
	got := newEvents()
	if _, err := b.On(topic, got.handler, group); err != nil {
		t.Fatal(err)
	}
	if err := b.Off(first); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1)
	waitFor(t, "the group's in-flight count to settle", 5*time.Second, func() bool {
		return rowOf(b.(eventstream.MemoryEventBus).GetStats(), topic, "g-"+topic).InFlight == 0
	})
}

// Kafka: a record waiting for its retry when Close cuts it off stays
// uncommitted; the group's next member gets it.
func TestKafkaCloseCutsWaitingRetry(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	group := eventstream.WithConsumerGroup("g-" + topic)
	first := quietKafkaBus(t, brokers, func(c *eventstream.Config) { c.ShutdownTimeout = 300 * time.Millisecond })
	var attempts atomic.Int32
	failed := make(chan struct{})
	if _, err := first.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if attempts.Add(1) == 1 {
			close(failed)
		}
		return errors.New("fails")
	}, group, backoff(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := first.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	<-failed
	time.Sleep(500 * time.Millisecond) // commit intervals pass while it waits
	var se *eventstream.ShutdownError
	if err := first.Close(); !errors.As(err, &se) || se.Unhandled < 1 {
		t.Fatalf("Close: %v, want a ShutdownError counting the waiting record", err)
	}
	second := quietKafkaBus(t, brokers, nil)
	got := newEvents()
	if _, err := second.On(topic, got.handler, group); err != nil {
		t.Fatal(err)
	}
	if e := got.wait(t, 1)[0]; e.Record.Offset != 0 {
		t.Fatalf("the next member got offset %d, want the record whose retry was cut", e.Record.Offset)
	}
	time.Sleep(2 * time.Second)
	if n := attempts.Load(); n != 1 {
		t.Fatalf("%d attempts at the closed bus, want 1: a retry ran after Close", n)
	}
}
