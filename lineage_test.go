package eventstream_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// chain is three topics whose handlers emit to the next: order → payment
// (whose first attempt fails, so that the event comes from a retry) →
// receipt.
type chain struct {
	order, payment, receipt string
	mu                      sync.Mutex
	got                     map[string][]*eventstream.Event // by topic
	done                    chan struct{}
	want                    int // receipts
}

func newChain(t *testing.T, b eventstream.EventBus, receipts int) *chain {
	t.Helper()
	base := eventstreamtest.Topic(t)
	c := &chain{order: base + ".order", payment: base + ".payment", receipt: base + ".receipt",
		got: map[string][]*eventstream.Event{}, done: make(chan struct{}), want: receipts}
	fast := &eventstream.RetryPolicy{MaxRetries: 2, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond, BackoffStrategy: "constant"}
	failed := map[string]bool{}
	on := func(topic string, h eventstream.EventHandler) {
		if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
			c.mu.Lock()
			c.got[topic] = append(c.got[topic], e)
			c.mu.Unlock()
			return h(ctx, e)
		}, eventstream.WithRetryPolicy(fast)); err != nil {
			t.Fatal(err)
		}
	}
	on(c.receipt, func(context.Context, *eventstream.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.got[c.receipt]) == c.want {
			close(c.done)
		}
		return nil
	})
	on(c.payment, func(ctx context.Context, e *eventstream.Event) error {
		c.mu.Lock()
		first := !failed[e.ID]
		failed[e.ID] = true
		c.mu.Unlock()
		if first {
			return errors.New("card declined, once")
		}
		return b.Emit(ctx, c.receipt, "receipt")
	})
	on(c.order, func(ctx context.Context, e *eventstream.Event) error {
		return b.Emit(ctx, c.payment, "payment")
	})
	return c
}

func (c *chain) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the chain did not complete")
	}
}

// only returns the one event handled on topic whose correlation id is corr
// (the first attempt's, for a retried one).
func (c *chain) only(t *testing.T, topic, corr string) *eventstream.Event {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.got[topic] {
		if e.CorrelationID == corr {
			return e
		}
	}
	t.Fatalf("no event on %s with correlation id %q", topic, corr)
	return nil
}

// testLineage: an Emit outside handlers starts a chain; an Emit with a
// handler's context (a retry's included) is caused by the handled event and
// stays in its chain; WithCorrelationID names a chain.
func testLineage(t *testing.T, b eventstream.EventBus) {
	c := newChain(t, b, 2)
	ctx := context.Background()
	if err := b.Emit(ctx, c.order, "plain"); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(ctx, c.order, "named", eventstream.WithCorrelationID("req-42")); err != nil {
		t.Fatal(err)
	}
	c.wait(t)

	c.mu.Lock()
	var order *eventstream.Event
	for _, e := range c.got[c.order] {
		if e.CorrelationID != "req-42" {
			order = e
		}
	}
	c.mu.Unlock()
	if order == nil {
		t.Fatal("the plain order was not handled")
	}
	if order.CausationID != "" || order.CorrelationID != order.ID {
		t.Errorf("chain start: causation %q correlation %q, want \"\" and its id %q", order.CausationID, order.CorrelationID, order.ID)
	}
	pay := c.only(t, c.payment, order.ID)
	if pay.CausationID != order.ID {
		t.Errorf("payment: causation %q, want the order %q", pay.CausationID, order.ID)
	}
	rcpt := c.only(t, c.receipt, order.ID)
	if rcpt.CausationID != pay.ID {
		t.Errorf("receipt (emitted by a retry): causation %q, want the payment %q", rcpt.CausationID, pay.ID)
	}

	named := c.only(t, c.order, "req-42")
	if named.CausationID != "" {
		t.Errorf("named order: causation %q", named.CausationID)
	}
	npay := c.only(t, c.payment, "req-42")
	nrcpt := c.only(t, c.receipt, "req-42")
	if npay.CausationID != named.ID || nrcpt.CausationID != npay.ID {
		t.Errorf("named chain: payment caused by %q (want %q), receipt by %q (want %q)", npay.CausationID, named.ID, nrcpt.CausationID, npay.ID)
	}
}

func TestLineageMemory(t *testing.T) {
	b, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testLineage(t, b)
}

func TestLineageMemoryWithoutTelemetry(t *testing.T) {
	b, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testLineage(t, b)
}

func TestLineageKafka(t *testing.T) {
	testLineage(t, newKafkaBus(t, eventstreamtest.KafkaCluster(t), nil))
}

func TestLineageKafkaCompact(t *testing.T) {
	testLineage(t, newKafkaBus(t, eventstreamtest.KafkaCluster(t), func(c *eventstream.Config) {
		c.Kafka.RecordFormat = eventstream.RecordFormatCompact
	}))
}

func TestLineageKafkaReal(t *testing.T) {
	testLineage(t, newKafkaBus(t, eventstreamtest.RealKafkaBrokers(t), nil))
}

// A dead letter continues its event's chain: caused by the event, with its
// correlation id, and the event's own causation id in a header for replays.
func testLineageDeadLetter(t *testing.T, b eventstream.EventBus) {
	topic := eventstreamtest.Topic(t)
	dead := make(chan *eventstream.Event, 1)
	if _, err := b.On(topic+".dlq", func(_ context.Context, e *eventstream.Event) error {
		dead <- e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	failing := make(chan *eventstream.Event, 1)
	if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
		select {
		case failing <- e:
		default:
		}
		return errors.New("always")
	}, eventstream.WithRetryPolicy(&eventstream.RetryPolicy{MaxRetries: 0})); err != nil {
		t.Fatal(err)
	}
	start := topic + ".start"
	if _, err := b.On(start, func(ctx context.Context, e *eventstream.Event) error {
		return b.Emit(ctx, topic, "doomed")
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), start, "go", eventstream.WithCorrelationID("req-7")); err != nil {
		t.Fatal(err)
	}
	var e, dl *eventstream.Event
	for _, ch := range []chan *eventstream.Event{failing, dead} {
		select {
		case got := <-ch:
			if e == nil {
				e = got
			} else {
				dl = got
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no dead letter")
		}
	}
	if dl.CausationID != e.ID || dl.CorrelationID != "req-7" || e.CorrelationID != "req-7" ||
		dl.Header(eventstream.HeaderDeadLetterCausationID) != e.CausationID || e.CausationID == "" {
		t.Errorf("dead letter: causation %q (want %q) correlation %q, original causation header %q (want %q)",
			dl.CausationID, e.ID, dl.CorrelationID, dl.Header(eventstream.HeaderDeadLetterCausationID), e.CausationID)
	}
}

func TestLineageDeadLetterMemory(t *testing.T) {
	b, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testLineageDeadLetter(t, b)
}

func TestLineageDeadLetterKafka(t *testing.T) {
	testLineageDeadLetter(t, newKafkaBus(t, eventstreamtest.KafkaCluster(t), nil))
}
