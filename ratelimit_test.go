package eventstream_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// A rate-limited subscription keeps to its rate, and its waits hold no
// worker: with one worker in the pool, another topic is handled while the
// limited one waits for its tokens. Both modes.
func TestRateLimitHoldsNoWorker(t *testing.T) {
	eachMode(t, func(c *eventstream.Config) { c.Pool.Size = 1 }, func(t *testing.T, b eventstream.EventBus) {
		topic := eventstreamtest.Topic(t)
		const limited, others = 6, 20
		var slowDone, fastDone atomic.Int64
		var first, last atomic.Int64 // unix nanos of the limited handler's first and last start
		if _, err := b.On(topic+".slow", func(context.Context, *eventstream.Event) error {
			now := time.Now().UnixNano()
			first.CompareAndSwap(0, now)
			last.Store(now)
			slowDone.Add(1)
			return nil
		}, eventstream.WithRateLimit(5, 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.On(topic+".fast", func(context.Context, *eventstream.Event) error {
			fastDone.Add(1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for i := range limited {
			if err := b.Emit(ctx, topic+".slow", i); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the limited topic to start", 10*time.Second, func() bool { return slowDone.Load() >= 1 })
		for i := range others {
			if err := b.Emit(ctx, topic+".fast", i); err != nil {
				t.Fatal(err)
			}
		}
		// 5 a second with a burst of 1: the last of 6 starts a second after
		// the first at the earliest; the other topic is done long before.
		waitFor(t, "the other topic while the limited one waits", 10*time.Second, func() bool { return fastDone.Load() == others })
		if n := slowDone.Load(); n == limited {
			t.Fatalf("all %d limited events were handled before the other topic's %d: no limit applied", n, others)
		}
		waitFor(t, "every limited event", 10*time.Second, func() bool { return slowDone.Load() == limited })
		if span := time.Duration(last.Load() - first.Load()); span < 900*time.Millisecond {
			t.Fatalf("6 events at 5/s (burst 1) started within %v", span)
		}
	})
}

func TestRateLimitBadConfig(t *testing.T) {
	b := quietBus(t, smallConfig(2, 8))
	defer b.Close()
	noop := func(context.Context, *eventstream.Event) error { return nil }
	for _, c := range []struct {
		rate  float64
		burst int
	}{{0, 1}, {-1, 1}, {math.NaN(), 1}, {5, 0}} {
		if _, err := b.On("t", noop, eventstream.WithRateLimit(c.rate, c.burst)); !errors.Is(err, eventstream.ErrInvalidConfig) {
			t.Errorf("WithRateLimit(%v, %d): %v, want ErrInvalidConfig", c.rate, c.burst, err)
		}
	}
	if _, err := b.On("t", noop, eventstream.WithRateLimit(math.Inf(1), 1)); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
