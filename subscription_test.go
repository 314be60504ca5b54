package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
)

// A subscription's delivery (subscription.go): the consume chain, retries,
// a handler that ends its goroutine, on pools of any size.

// Chains of handlers that emit, with failures and dead letters, on tiny
// pools and queues: every event ends handled or dead-lettered, and Close
// drains without a ShutdownError.
func TestHandlerChainsUnderTinyPools(t *testing.T) {
	for _, pool := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			b := quietBus(t, smallConfig(pool, 1))
			var endOK, dead atomic.Int64
			const stages, n = 4, 200
			// Group c has a circuit breaker and its dependency is down for a
			// while: its circuit opens, holds its events, probes, resumes.
			var outage atomic.Bool
			outage.Store(true)
			time.AfterFunc(100*time.Millisecond, func() { outage.Store(false) })
			var cDone, cDead [stages]atomic.Int64
			breaker := eventstream.WithCircuitBreaker(eventstream.CircuitBreaker{ConsecutiveFailures: 2, CoolDown: 20 * time.Millisecond})
			for s := 0; s < stages; s++ {
				topic, next := fmt.Sprintf("stage%d", s), fmt.Sprintf("stage%d", s+1)
				last := s == stages-1
				for _, group := range []string{"a", "b"} {
					_, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
						var v int
						if err := e.Unmarshal(&v); err != nil {
							return err
						}
						if v%7 == s && group == "b" {
							return errors.New("unlucky")
						}
						if last {
							if group == "a" {
								endOK.Add(1)
							}
							return nil
						}
						if group == "a" {
							return b.Emit(ctx, next, v)
						}
						return nil
					}, eventstream.WithConsumerGroup(group), eventstream.WithConcurrency(2))
					if err != nil {
						t.Fatal(err)
					}
				}
				if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
					if outage.Load() {
						return errors.New("dependency down")
					}
					cDone[s].Add(1)
					return nil
				}, eventstream.WithConsumerGroup("c"), eventstream.WithConcurrency(2), breaker); err != nil {
					t.Fatal(err)
				}
				if _, err := b.On(topic+".dlq", func(_ context.Context, e *eventstream.Event) error {
					if e.Header(eventstream.HeaderDeadLetterGroup) == "c" {
						cDead[s].Add(1)
					} else {
						dead.Add(1)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := range n {
				if err := b.Emit(ctx, "stage0", i); err != nil {
					t.Fatalf("Emit %d: %v", i, err)
				}
			}
			// Group a carries every event to the end; group b fails one in
			// seven at each stage it sees.
			wantDead := int64(0)
			for s := 0; s < stages; s++ {
				for i := range n {
					if i%7 == s {
						wantDead++
					}
				}
			}
			waitFor(t, "every event handled or dead-lettered", 20*time.Second, func() bool {
				for s := range stages {
					if cDone[s].Load()+cDead[s].Load() != n {
						return false
					}
				}
				return endOK.Load() == n && dead.Load() == wantDead
			})
			for s := range stages {
				// Only the events that ran and failed their attempts go to
				// the dead-letter topic; those the open circuit held do not.
				if d := cDead[s].Load(); d >= n/4 {
					t.Errorf("stage %d: group c dead-lettered %d of %d events in an outage its circuit should have held", s, d, n)
				}
			}
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// A handler that ends its goroutine (t.FailNow does) counts as failed: the
// event is dead-lettered and the lane goes on with the next one.
func TestGoexitInHandler(t *testing.T) {
	b := quietBus(t, smallConfig(1, 10))
	defer b.Close()
	var handled, dead atomic.Int64
	b.On("exit.dlq", func(context.Context, *eventstream.Event) error { dead.Add(1); return nil })
	b.On("exit", func(_ context.Context, e *eventstream.Event) error {
		var v int
		e.Unmarshal(&v)
		if v == 0 {
			runtime.Goexit()
		}
		handled.Add(1)
		return nil
	})
	for i := range 3 {
		if err := b.Emit(context.Background(), "exit", i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the lane to go on after Goexit", 5*time.Second, func() bool { return handled.Load() == 2 && dead.Load() == 1 })
}

// MaxRetries at math.MaxInt means "keep retrying", not zero retries.
func TestMaxRetriesMaxInt(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	var calls atomic.Int64
	b.On("retry.max", func(context.Context, *eventstream.Event) error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	}, eventstream.WithRetryPolicy(&eventstream.RetryPolicy{MaxRetries: math.MaxInt, BackoffStrategy: "constant"}))
	b.Emit(context.Background(), "retry.max", 1)
	waitFor(t, "the third attempt", 5*time.Second, func() bool { return calls.Load() == 3 })
}

// Handlers that emit while the pool is smaller than the number of busy
// lanes still make progress: a lane without a worker waits in the
// scheduler's queue instead of blocking Emit on the pool.
func TestSmallPoolNoDeadlock(t *testing.T) {
	cfg := eventstream.DefaultConfig()
	cfg.Pool.Size = 1
	b, err := eventstream.New(cfg, eventstream.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var got atomic.Int32
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		if _, err := b.On("chain", func(ctx context.Context, e *eventstream.Event) error {
			return b.Emit(ctx, "sink", e.Data)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.On("sink", func(ctx context.Context, e *eventstream.Event) error {
		if got.Add(1) == 400 {
			close(done)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := b.Emit(context.Background(), "chain", i); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of 400 events reached the sink", got.Load())
	}
}
