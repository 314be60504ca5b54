package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/history"
	"libx.net/eventstream/telemetry"
)

// A handler's third answer: Requeue hands the event back. It is not a
// failed attempt; the event comes again, in order, with its Redelivery one
// higher, visible in spans, stats and history.

// testRequeueKeepsOrder: event 3 of a key is handed back twice, then
// handled; the key's events still run in emit order, and nothing is
// retried, failed or dead-lettered.
func testRequeueKeepsOrder(t *testing.T, b eventstream.EventBus, topic string) {
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		var v int
		if err := e.Unmarshal(&v); err != nil {
			return err
		}
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%d/%d", v, e.Redelivery))
		mu.Unlock()
		if v == 3 && e.Redelivery < 2 {
			return eventstream.Requeue("not ready")
		}
		if v == 9 {
			close(done)
		}
		return nil
	}, eventstream.WithConsumerGroup("g-"+topic)); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := b.Emit(context.Background(), topic, i, eventstream.WithKey("k")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("not all events handled")
	}
	mu.Lock()
	got := strings.Join(seen, " ")
	mu.Unlock()
	if want := "0/0 1/0 2/0 3/0 3/1 3/2 4/0 5/0 6/0 7/0 8/0 9/0"; got != want {
		t.Fatalf("handled %s, want %s", got, want)
	}
	waitFor(t, "the stats", 5*time.Second, func() bool {
		return rowOf(b.(eventstream.MemoryEventBus).GetStats(), topic, "g-"+topic).Succeeded == 10
	})
	row := rowOf(b.(eventstream.MemoryEventBus).GetStats(), topic, "g-"+topic)
	if row.Requeued != 2 || row.Failed != 0 || row.Retried != 0 || row.DeadLettered != 0 || row.InFlight != 0 {
		t.Fatalf("stats %+v: want 2 requeued, nothing failed, retried or dead-lettered", row.Counts)
	}
}

func TestRequeueKeepsOrder(t *testing.T) {
	b := quietBus(t, smallConfig(1, 64))
	defer b.Close()
	testRequeueKeepsOrder(t, b, eventstreamtest.Topic(t))
}

func TestKafkaRequeueKeepsOrder(t *testing.T) {
	b := quietKafkaBus(t, eventstreamtest.KafkaCluster(t), func(c *eventstream.Config) {
		c.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
	})
	testRequeueKeepsOrder(t, b, eventstreamtest.Topic(t))
}

// testRequeueLimit: a handler that always hands its event back reaches the
// bound; the event is dead-lettered with its own reason.
func testRequeueLimit(t *testing.T, b eventstream.EventBus, topic string) {
	var runs atomic.Int32
	if _, err := b.On(topic, func(context.Context, *eventstream.Event) error {
		runs.Add(1)
		return eventstream.Requeue("never ready")
	}, eventstream.WithMaxRequeues(2)); err != nil {
		t.Fatal(err)
	}
	dead := make(chan *eventstream.Event, 1)
	if _, err := b.On(topic+".dlq", func(_ context.Context, e *eventstream.Event) error {
		dead <- e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-dead:
		reason := e.Headers[eventstream.HeaderDeadLetterReason]
		if !strings.Contains(reason, "handed back 2 times") || !strings.Contains(reason, "never ready") {
			t.Fatalf("dead-letter reason %q", reason)
		}
		if typ := e.Headers[eventstream.HeaderDeadLetterErrorType]; !strings.Contains(typ, "RequeueLimitError") {
			t.Fatalf("dead-letter error type %q", typ)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no dead letter")
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("handler ran %d times, want 3 (the first delivery and 2 hand-backs)", n)
	}
}

func TestRequeueLimitDeadLetters(t *testing.T) {
	b := quietBus(t, smallConfig(1, 64))
	defer b.Close()
	testRequeueLimit(t, b, eventstreamtest.Topic(t))
}

func TestKafkaRequeueLimitDeadLetters(t *testing.T) {
	b := quietKafkaBus(t, eventstreamtest.KafkaCluster(t), nil)
	testRequeueLimit(t, b, eventstreamtest.Topic(t))
}

// In memory mode an event without a key handed back goes to another member
// of the group.
func TestRequeueGoesToAnotherMember(t *testing.T) {
	b := quietBus(t, smallConfig(2, 64))
	defer b.Close()
	topic := eventstreamtest.Topic(t)
	group := eventstream.WithConsumerGroup("g-" + topic)
	got := make(chan string, 4)
	for _, name := range []string{"a", "b"} {
		if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
			got <- fmt.Sprintf("%s/%d", name, e.Redelivery)
			if e.Redelivery == 0 {
				return eventstream.Requeue("let another member try")
			}
			return nil
		}, group); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	first, second := <-got, <-got
	if first[0] == second[0] || second[2:] != "1" {
		t.Fatalf("handled by %s then %s: want the other member, second delivery", first, second)
	}
}

// A hand-back with a delay holds its lane, not a worker: with one worker,
// another topic runs while the event waits.
func TestRequeueAfterHoldsNoWorker(t *testing.T) {
	b := quietBus(t, smallConfig(1, 64))
	defer b.Close()
	topic := eventstreamtest.Topic(t)
	handedBack := make(chan struct{})
	var again atomic.Bool
	if _, err := b.On(topic+".a", func(_ context.Context, e *eventstream.Event) error {
		if e.Redelivery == 0 {
			close(handedBack)
			return eventstream.RequeueAfter(3*time.Second, "later")
		}
		again.Store(true)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	other := make(chan struct{})
	if _, err := b.On(topic+".b", func(context.Context, *eventstream.Event) error {
		close(other)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = b.Emit(context.Background(), topic+".a", 1)
	<-handedBack
	_ = b.Emit(context.Background(), topic+".b", 1)
	<-other
	if again.Load() {
		t.Fatal("the other topic waited for the hand-back's delay: it held the only worker")
	}
}

// The redelivery count is on the process span, the hand-back is a span
// event (not an error), and the history says requeued.
func TestRequeueTelemetry(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	b := quietBus(t, smallConfig(1, 64), eventstream.WithTracerProvider(tp))
	topic := eventstreamtest.Topic(t)
	done := make(chan struct{})
	if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
		if e.Redelivery == 0 {
			return eventstream.Requeue("busy")
		}
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = b.Emit(context.Background(), topic, 1)
	<-done
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var spans []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "process "+topic {
			spans = append(spans, s)
		}
	}
	if len(spans) != 2 {
		t.Fatalf("%d process spans, want 2", len(spans))
	}
	first, second := spans[0], spans[1]
	if first.Status().Code.String() == "Error" || len(first.Events()) != 1 || first.Events()[0].Name != telemetry.EventRequeue {
		t.Errorf("first span: status %v, events %v; want no error and a requeue event", first.Status(), first.Events())
	}
	redelivery := func(s sdktrace.ReadOnlySpan) int64 {
		for _, a := range s.Attributes() {
			if string(a.Key) == telemetry.AttrRedelivery {
				return a.Value.AsInt64()
			}
		}
		return 0
	}
	if redelivery(first) != 0 || redelivery(second) != 1 {
		t.Errorf("redelivery attributes %d, %d; want 0, 1", redelivery(first), redelivery(second))
	}
	var statuses []string
	for _, e := range b.(eventstream.MemoryEventBus).GetHistory(10) {
		if e.Operation == "process" {
			statuses = append(statuses, fmt.Sprintf("%s/%d/%s", e.Status, e.Redelivery, e.Error))
		}
	}
	if got, want := strings.Join(statuses, " "), history.StatusOK+"/1/ "+history.StatusRequeued+"/0/busy"; got != want {
		t.Errorf("history %q, want %q (newest first)", got, want)
	}
	if err := eventstream.Requeue("x"); !errors.As(err, new(*eventstream.RequeueError)) {
		t.Errorf("Requeue returned %T", err)
	}
}
