package eventstreamtest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/middleware"
)

// Flow control: the handler's third answer (Requeue), its bound, the
// circuit breaker, the rate limit and typed handlers mean the same on every
// transport.

// testRequeue: an event handed back is delivered again to its group, not
// as a failed attempt (no retry, no dead letter), with its Redelivery
// counted and its key's order kept.
func testRequeue(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	dlq := newCollector()
	if _, err := b.On(topic+".dlq", dlq.handler("dlq")); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var mu sync.Mutex
	var order []int
	redeliveries := map[int]int{}
	done := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		var i int
		if err := e.Unmarshal(&i); err != nil {
			return eventstream.Permanent(err)
		}
		if eventstream.Attempt(ctx) != 1 {
			t.Errorf("event %d: attempt %d, want 1: a hand-back is not a failed attempt", i, eventstream.Attempt(ctx))
		}
		if i%2 == 0 && e.Redelivery == 0 {
			return eventstream.Requeue("not yet")
		}
		mu.Lock()
		order = append(order, i)
		redeliveries[i] = e.Redelivery
		mu.Unlock()
		return done.handler("")(ctx, e)
	}, eventstream.WithConsumerGroup("requeue-"+topic), fastRetry(3)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := b.Emit(context.Background(), topic, i, eventstream.WithKey("one-key")); err != nil {
			t.Fatal(err)
		}
	}
	done.wait(t, n, tr.Timeout)
	done.settle(t, n)
	dlq.settle(t, 0)
	mu.Lock()
	defer mu.Unlock()
	for i, got := range order {
		if got != i {
			t.Fatalf("handled in order %v, want 0..%d: a hand-back goes before newer events of its key", order, n-1)
		}
	}
	for i := range n {
		if want := 1 - i%2; redeliveries[i] != want {
			t.Errorf("event %d: Redelivery %d, want %d", i, redeliveries[i], want)
		}
	}
}

// testRequeueLimit: an event handed back more often than its subscription
// allows is dead-lettered with a reason of its own.
func testRequeueLimit(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	dlq := newCollector()
	if _, err := b.On(topic+".dlq", dlq.handler("dlq")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	if _, err := b.On(topic, func(context.Context, *eventstream.Event) error {
		calls.Add(1)
		return eventstream.Requeue("never ready")
	}, eventstream.WithMaxRequeues(2)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "x"); err != nil {
		t.Fatal(err)
	}
	dlq.wait(t, 1, tr.Timeout)
	dlq.settle(t, 1)
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3 (the first and 2 hand-backs)", n)
	}
	d := dlq.events[0]
	if et := d.Header(eventstream.HeaderDeadLetterErrorType); !strings.Contains(et, "RequeueLimitError") {
		t.Errorf("dead letter error type %q, want the requeue limit's", et)
	}
	if r := d.Header(eventstream.HeaderDeadLetterReason); !strings.Contains(r, "never ready") {
		t.Errorf("dead letter reason %q lacks the last hand-back's", r)
	}
}

// testCircuitBreaker: while the handler's dependency is down the circuit
// opens and holds the events — not retried to exhaustion, not
// dead-lettered — and once a probe succeeds every held event is handled.
func testCircuitBreaker(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	dlq := newCollector()
	if _, err := b.On(topic+".dlq", dlq.handler("dlq")); err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	down.Store(true)
	var calls atomic.Int32
	done := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		calls.Add(1)
		if down.Load() {
			return errors.New("database down")
		}
		return done.handler("")(ctx, e)
	}, fastRetry(1000), eventstream.WithCircuitBreaker(eventstream.CircuitBreaker{
		ConsecutiveFailures: 3, CoolDown: 100 * time.Millisecond,
	})); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		if err := b.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	// 5 ms retries for a second would be about 200 attempts; the open
	// circuit lets one probe through per cool-down.
	if c := calls.Load(); c > 40 {
		t.Errorf("%d attempts during a one-second outage: the circuit did not hold the events", c)
	}
	down.Store(false)
	done.wait(t, n, tr.Timeout)
	done.settle(t, n)
	dlq.settle(t, 0)
}

// testRateLimit: a subscription keeps to its rate.
func testRateLimit(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	var mu sync.Mutex
	var starts []time.Time
	done := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return done.handler("")(ctx, e)
	}, eventstream.WithRateLimit(20, 1)); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		if err := b.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	done.wait(t, n, tr.Timeout)
	mu.Lock()
	defer mu.Unlock()
	// 20 a second, a burst of 1: nine gaps of 50 ms at the least.
	if span := starts[n-1].Sub(starts[0]); span < 400*time.Millisecond {
		t.Errorf("%d events at 20/s started within %v", n, span)
	}
}

type typedOrder struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

// testTypedHandler: Handle[T] hands the handler its own type; a payload
// that does not decode into it is a permanent failure, dead-lettered after
// one attempt with a reason naming the type.
func testTypedHandler(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	dlq := newCollector()
	if _, err := b.On(topic+".dlq", dlq.handler("dlq")); err != nil {
		t.Fatal(err)
	}
	got := make(chan typedOrder, 1)
	if _, err := b.On(topic, eventstream.Handle(func(_ context.Context, _ *eventstream.Event, o typedOrder) error {
		got <- o
		return nil
	}), fastRetry(3)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, typedOrder{ID: "o-1", Amount: 42}); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-got:
		if o != (typedOrder{ID: "o-1", Amount: 42}) {
			t.Errorf("typed handler got %+v", o)
		}
	case <-time.After(tr.Timeout):
		t.Fatal("typed handler never ran")
	}
	if err := b.Emit(context.Background(), topic, []string{"not", "an", "order"}); err != nil {
		t.Fatal(err)
	}
	dlq.wait(t, 1, tr.Timeout)
	d := dlq.events[0]
	if a := d.Header(eventstream.HeaderDeadLetterAttempts); a != strconv.Itoa(1) {
		t.Errorf("undecodable payload: %s attempts, want 1 (a permanent failure)", a)
	}
	if r := d.Header(eventstream.HeaderDeadLetterReason); !strings.Contains(r, "typedOrder") {
		t.Errorf("dead letter reason %q does not name the type", r)
	}
}

// testCorrelationMiddleware: middleware.Correlation hands the handler its
// event's correlation id — the one named at the chain's start, carried to
// an event emitted from a handler.
func testCorrelationMiddleware(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	first, second := Topic(t), Topic(t)
	got := make(chan string, 1)
	if _, err := b.On(second, func(ctx context.Context, e *eventstream.Event) error {
		got <- middleware.CorrelationID(ctx)
		return nil
	}, eventstream.WithSubscriptionMiddleware(middleware.Correlation(nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(first, func(ctx context.Context, e *eventstream.Event) error {
		return b.Emit(ctx, second, "caused")
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), first, "start", eventstream.WithCorrelationID("request-9")); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "request-9" {
			t.Errorf("the caused event's handler saw correlation id %q, want request-9", id)
		}
	case <-time.After(tr.Timeout):
		t.Fatal("the caused event was not handled")
	}
}
