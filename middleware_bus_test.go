package eventstream_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/middleware"
)

// The middleware of package middleware through the bus, in both modes.

// A rate limit holds events back instead of failing them: the lane fills
// and Emit waits, as with a slow handler; nothing is retried or
// dead-lettered.
func TestRateLimitIsBackpressure(t *testing.T) {
	cfg := smallConfig(4, 2)
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b := quietBus(t, cfg).(eventstream.MemoryEventBus)
	limit, err := middleware.RateLimit(rate.Every(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	if _, err := b.On("orders", func(context.Context, *eventstream.Event) error { handled.Add(1); return nil },
		eventstream.WithSubscriptionMiddleware(limit)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 { // one handled, one waiting for a token, one queued
		if err := b.Emit(ctx, "orders", i); err != nil {
			t.Fatalf("Emit %d: %v", i, err)
		}
	}
	waitFor(t, "the first event handled", 5*time.Second, func() bool { return handled.Load() == 1 })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Emit(short, "orders", 3); !errors.Is(err, eventstream.ErrQueueFull) {
		t.Fatalf("Emit over the rate: %v, want ErrQueueFull (backpressure)", err)
	}
	if s := b.GetStats(); s.Failed != 0 || s.Retried != 0 || s.DeadLettered != 0 {
		t.Errorf("stats: %d failed, %d retried, %d dead-lettered; want none", s.Failed, s.Retried, s.DeadLettered)
	}
	_ = b.Close() // cuts off the waiting event after ShutdownTimeout
}

// Timeout placed as subscription middleware sits inside the bus's retry:
// each attempt has its own deadline, a timed-out attempt is retried per
// the policy, and one that never finishes in time ends as a dead letter
// that says it timed out.
func TestTimeoutComposesWithRetry(t *testing.T) {
	tune := func(cfg *eventstream.Config) {
		cfg.Retry = &eventstream.RetryPolicy{MaxRetries: 2, BackoffStrategy: "constant", InitialDelay: time.Millisecond}
	}
	eachMode(t, tune, func(t *testing.T, b eventstream.EventBus) {
		ok, dlq := newEvents(), newEvents()
		var attempts atomic.Int64
		slowFirst := func(ctx context.Context, e *eventstream.Event) error {
			attempts.Add(1)
			if eventstream.Attempt(ctx) == 1 {
				<-ctx.Done() // the first attempt outlives its deadline
				return ctx.Err()
			}
			return ok.handler(ctx, e)
		}
		never := func(ctx context.Context, e *eventstream.Event) error {
			<-ctx.Done()
			return ctx.Err()
		}
		timeout := eventstream.WithSubscriptionMiddleware(middleware.Timeout(50 * time.Millisecond))
		for topic, h := range map[string]eventstream.EventHandler{"slow": slowFirst, "stuck": never} {
			if _, err := b.On(topic, h, timeout, eventstream.WithConsumerGroup("g")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.On("stuck.dlq", dlq.handler); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := b.Emit(ctx, "slow", 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit(ctx, "stuck", 2); err != nil {
			t.Fatal(err)
		}
		ok.wait(t, 1)
		if n := attempts.Load(); n != 2 {
			t.Errorf("slow: %d attempts, want 2 (the timed-out one retried)", n)
		}
		d := dlq.wait(t, 1)[0]
		if r := d.Header(eventstream.HeaderDeadLetterReason); !strings.Contains(r, "timed out after 50ms") || d.Header(eventstream.HeaderDeadLetterAttempts) != "3" {
			t.Errorf("dead letter: reason %q after %s attempts, want a timeout after 3", r, d.Header(eventstream.HeaderDeadLetterAttempts))
		}
	})
}

// Correlation reads the event's correlation id in both modes (in Kafka
// mode it travelled in a record header), also in a handler two events down
// the chain.
func TestCorrelationThroughBus(t *testing.T) {
	eachMode(t, nil, func(t *testing.T, b eventstream.EventBus) {
		ids := make(chan string, 2)
		corr := eventstream.WithSubscriptionMiddleware(middleware.Correlation(nil))
		if _, err := b.On("checkout", func(ctx context.Context, e *eventstream.Event) error {
			ids <- middleware.CorrelationID(ctx)
			return b.Emit(ctx, "payments", 2)
		}, corr); err != nil {
			t.Fatal(err)
		}
		if _, err := b.On("payments", func(ctx context.Context, e *eventstream.Event) error {
			ids <- middleware.CorrelationID(ctx)
			return nil
		}, corr); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit(context.Background(), "checkout", 1, eventstream.WithCorrelationID("checkout-7")); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			select {
			case id := <-ids:
				if id != "checkout-7" {
					t.Errorf("CorrelationID = %q, want checkout-7", id)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("not delivered")
			}
		}
	})
}

// Dedup on a subscription whose handler fails once: the retry is not a
// duplicate (nothing recorded on failure), the event is handled once.
func TestDedupThroughBusRetry(t *testing.T) {
	tune := func(cfg *eventstream.Config) {
		cfg.Retry = &eventstream.RetryPolicy{MaxRetries: 1, BackoffStrategy: "constant", InitialDelay: time.Millisecond}
	}
	eachMode(t, tune, func(t *testing.T, b eventstream.EventBus) {
		dedup := middleware.NewDedup()
		ok := newEvents()
		if _, err := b.On("orders", func(ctx context.Context, e *eventstream.Event) error {
			if eventstream.Attempt(ctx) == 1 {
				return errors.New("database busy")
			}
			return ok.handler(ctx, e)
		}, eventstream.WithSubscriptionMiddleware(dedup.Middleware)); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit(context.Background(), "orders", 1); err != nil {
			t.Fatal(err)
		}
		ok.wait(t, 1)
		if dedup.Duplicates() != 0 {
			t.Errorf("duplicates = %d, want 0", dedup.Duplicates())
		}
	})
}

// In Kafka mode a producer that retried writes the same event twice (one
// ce_id, two records): Dedup hands it to the handler once.
func TestDedupKafkaProducerDuplicate(t *testing.T) {
	testDedupProducerDuplicate(t, eventstreamtest.KafkaCluster(t))
}

func testDedupProducerDuplicate(t *testing.T, brokers []string) {
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	b := newKafkaBus(t, brokers, nil)
	dedup := middleware.NewDedup()
	got := newEvents()
	if _, err := b.On(topic, got.handler, eventstream.WithSubscriptionMiddleware(dedup.Middleware)); err != nil {
		t.Fatal(err)
	}
	ce := func(id, v string) *kgo.Record {
		return &kgo.Record{Topic: topic, Value: []byte(v), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id)},
			{Key: "ce_source", Value: []byte("/shop")}, {Key: "ce_type", Value: []byte("order")},
			{Key: "content-type", Value: []byte("application/cloudevents+json")}}}
	}
	if err := rawClient(t, brokers).ProduceSync(context.Background(),
		ce("order-1", `1`), ce("order-1", `1`), ce("order-2", `2`)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 2)
	waitFor(t, "the duplicate counted", 10*time.Second, func() bool { return dedup.Duplicates() == 1 })
	if evs := got.wait(t, 2); len(evs) != 2 || evs[0].ID != "order-1" || evs[1].ID != "order-2" {
		t.Errorf("handled %d events (%s, %s), want order-1 and order-2 once each", len(evs), evs[0].ID, evs[1].ID)
	}
}
