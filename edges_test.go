package eventstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
)

// Regression tests for the edges of the bus: small pools, full queues,
// Off and Close from awkward places, bad sizes. Memory mode unless named.

// A failing handler on a pool of one worker dead-letters into a lane that
// only that worker could drain: it must not wait for room.
func TestDeadLetterOnBusyPoolDoesNotDeadlock(t *testing.T) {
	b := quietBus(t, smallConfig(1, 4))
	var dead atomic.Int64
	if _, err := b.On("orders.dlq", func(context.Context, *eventstream.Event) error { dead.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On("orders", func(context.Context, *eventstream.Event) error { return errors.New("always fails") }); err != nil {
		t.Fatal(err)
	}
	const n = 50
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := b.Emit(ctx, "orders", i); err != nil {
			t.Fatalf("Emit %d: %v", i, err)
		}
	}
	waitFor(t, "every event dead-lettered", 10*time.Second, func() bool { return dead.Load() == n })
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

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

// Off from the subscription's own handler returns (it does not wait for the
// worker that is calling it), in memory mode.
func TestOffFromOwnHandler(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	var sub eventstream.Subscription
	offDone := make(chan error, 1)
	ready := make(chan struct{})
	var err error
	sub, err = b.On("self.off", func(context.Context, *eventstream.Event) error {
		<-ready
		offDone <- b.Off(sub)
		return nil
	}, eventstream.WithConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	if err := b.Emit(context.Background(), "self.off", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-offDone:
		if err != nil {
			t.Fatalf("Off: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Off from the subscription's own handler did not return")
	}
}

// Off from outside waits for the in-flight handler to finish.
func TestOffWaitsForInFlight(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	sub, err := b.On("off.wait", func(context.Context, *eventstream.Event) error {
		close(started)
		<-release
		time.Sleep(20 * time.Millisecond)
		finished.Store(true)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Emit(context.Background(), "off.wait", 1)
	<-started
	time.AfterFunc(20*time.Millisecond, func() { close(release) })
	if err := b.Off(sub); err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Fatal("Off returned before its in-flight handler finished")
	}
}

// An Emit waiting for room when Close's timeout runs out returns an error,
// or its event is counted unhandled: never nil and lost.
func TestEmitWaitingAtCloseIsNotLost(t *testing.T) {
	cfg := smallConfig(4, 1)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	b := quietBus(t, cfg)
	block := make(chan struct{})
	defer close(block)
	var handled atomic.Int64
	if _, err := b.On("slow", func(ctx context.Context, _ *eventstream.Event) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		handled.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), "slow", 0); err != nil { // in hand
		t.Fatal(err)
	}
	const waiting = 3
	errs := make(chan error, waiting)
	for i := range waiting {
		go func() { errs <- b.Emit(context.Background(), "slow", i+1) }()
	}
	time.Sleep(50 * time.Millisecond)
	closeErr := b.Close()
	var se *eventstream.ShutdownError
	unhandled := 0
	if errors.As(closeErr, &se) {
		unhandled = se.Unhandled
	}
	refused := 0
	for range waiting {
		if err := <-errs; err != nil {
			if !errors.Is(err, eventstream.ErrClosed) && !errors.Is(err, eventstream.ErrQueueFull) {
				t.Errorf("Emit failed with %v, want ErrClosed or ErrQueueFull", err)
			}
			refused++
		}
	}
	accepted := 1 + waiting - refused
	if got := int(handled.Load()) + unhandled; got < accepted {
		t.Fatalf("%d events accepted (Emit returned nil), %d handled + %d reported unhandled: some were lost",
			accepted, handled.Load(), unhandled)
	}
}

// After Close's timeout, cut-off events are reported unhandled and never
// retried or dead-lettered after Close returned.
func TestNoDeadLetterAfterCloseReturned(t *testing.T) {
	var logs syncBuffer
	cfg := eventstream.DefaultConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b, err := eventstream.New(cfg, eventstream.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var once sync.Once
	if _, err := b.On("cut", func(ctx context.Context, _ *eventstream.Event) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	var dead atomic.Int64
	if _, err := b.On("cut.dlq", func(context.Context, *eventstream.Event) error { dead.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b.Emit(context.Background(), "cut", i)
	}
	<-started
	err = b.Close()
	var se *eventstream.ShutdownError
	if !errors.As(err, &se) || se.Unhandled != 3 {
		t.Fatalf("Close = %v, want a ShutdownError with 3 unhandled", err)
	}
	mark := logs.Len()
	time.Sleep(300 * time.Millisecond)
	if after := logs.String()[mark:]; strings.Contains(after, "dead-letter") || strings.Contains(after, "retrying") {
		t.Fatalf("logged after Close returned:\n%s", after)
	}
	if dead.Load() != 0 {
		t.Fatalf("%d events dead-lettered after shutdown", dead.Load())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// On racing Close (run with -race): each On either fails with ErrClosed or
// returns a subscription that Close released.
func TestOnRacingClose(t *testing.T) {
	for range 20 {
		b := quietBus(t, eventstream.DefaultConfig())
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				_, err := b.On(fmt.Sprintf("race%d", i), func(context.Context, *eventstream.Event) error { return nil })
				if err != nil && !errors.Is(err, eventstream.ErrClosed) {
					t.Errorf("On: %v", err)
				}
			})
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

// Subscribing and leaving in a loop does not grow the heap.
func TestOnOffHeapFlat(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	cycle := func(n int) {
		for i := range n {
			s, err := b.On(fmt.Sprintf("cycle.%d", i%10), func(context.Context, *eventstream.Event) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Off(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	cycle(2000) // warm up caches sized by use
	before := heapInUse()
	cycle(20000)
	after := heapInUse()
	if grow := int64(after) - int64(before); grow > 1<<20 {
		t.Fatalf("heap grew by %d bytes over 20,000 On/Off cycles", grow)
	}
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
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

// Huge sizes are configuration errors, not a crash in makeslice.
func TestHugeSizesAreConfigErrors(t *testing.T) {
	cfg := eventstream.DefaultConfig()
	cfg.Pool.Size, cfg.Pool.PreAlloc = math.MaxInt, true
	if _, err := eventstream.New(cfg); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Errorf("Pool.Size MaxInt with PreAlloc: %v", err)
	}
	cfg = eventstream.DefaultConfig()
	cfg.Memory.MaxHistorySize = math.MaxInt
	if _, err := eventstream.New(cfg); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Errorf("MaxHistorySize MaxInt: %v", err)
	}
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	_, err := b.On("t", func(context.Context, *eventstream.Event) error { return nil }, eventstream.WithConcurrency(math.MaxInt))
	if !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Errorf("WithConcurrency(MaxInt): %v", err)
	}
}

// A topic whose "<topic>.dlq" would be too long is refused at On (that
// subscription could never dead-letter), but it is a valid topic: Emit to
// it works, whatever its length up to 249.
func TestTopicWithoutValidDeadLetterTopic(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	for n := 246; n <= 249; n++ {
		topic := strings.Repeat("t", n)
		if _, err := b.On(topic, func(context.Context, *eventstream.Event) error { return nil }); !errors.Is(err, eventstream.ErrInvalidTopic) {
			t.Errorf("On(%d characters): %v", n, err)
		}
		if err := b.Emit(context.Background(), topic, 1); err != nil {
			t.Errorf("Emit(%d characters): %v", n, err)
		}
	}
	nodlq := quietBus(t, eventstream.DefaultConfig(), eventstream.WithoutDeadLetter())
	defer nodlq.Close()
	topic := strings.Repeat("t", 249)
	got := make(chan struct{}, 1)
	if _, err := nodlq.On(topic, func(context.Context, *eventstream.Event) error { got <- struct{}{}; return nil }); err != nil {
		t.Fatalf("On without dead letters: %v", err)
	}
	if err := nodlq.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	<-got
}

// An event that merely carries the dead-letter header is an ordinary event:
// when its handler fails, it is dead-lettered, not dropped.
func TestForgedDeadLetterHeaderStillDeadLettered(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	var dead atomic.Int64
	b.On("forged.dlq", func(context.Context, *eventstream.Event) error { dead.Add(1); return nil })
	b.On("forged", func(context.Context, *eventstream.Event) error { return eventstream.Permanent(errors.New("bad")) })
	b.Emit(context.Background(), "forged", 1,
		eventstream.WithHeaders(map[string]string{eventstream.HeaderDeadLetterTopic: "elsewhere"}))
	waitFor(t, "the dead letter", 5*time.Second, func() bool { return dead.Load() == 1 })
}

// Both modes agree on a done context: Emit fails with its error and
// delivers nothing.
func TestEmitCancelledContext(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	var got atomic.Int64
	b.On("cancelled", func(context.Context, *eventstream.Event) error { got.Add(1); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Emit(ctx, "cancelled", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Emit with a cancelled ctx = %v", err)
	}
	if err := b.Emit(context.Background(), "cancelled", 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second event", 5*time.Second, func() bool { return got.Load() == 1 })
	time.Sleep(20 * time.Millisecond)
	if got.Load() != 1 {
		t.Fatal("the cancelled Emit was delivered")
	}
	//lint:ignore SA1012 a nil context is the bad input under test
	if err := b.Emit(nil, "cancelled", 3); !errors.Is(err, eventstream.ErrNilContext) { //nolint:staticcheck
		t.Fatalf("Emit(nil ctx) = %v", err)
	}
}

func TestOffAfterClose(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	sub, _ := b.On("x", func(context.Context, *eventstream.Event) error { return nil })
	b.Close()
	if err := b.Off(sub); !errors.Is(err, eventstream.ErrClosed) {
		t.Fatalf("Off after Close = %v, want ErrClosed", err)
	}
}

// The debug page keeps answering after Close, with what was measured.
func TestDebugHandlerAfterClose(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	b.On("x", func(context.Context, *eventstream.Event) error { return nil })
	b.Emit(context.Background(), "x", 1)
	b.Close()
	srv := httptest.NewServer(eventstream.DebugHandler(b))
	defer srv.Close()
	for _, path := range []string{"/", "/events", "/stats", "/topology", "/?format=json"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s after Close: %s", path, resp.Status)
		}
	}
}

// An async Emit through an MQAdapter gets its callback whatever the
// adapter's System name, and the adapter's context reaches the handler.
func TestMQAdapterAsyncAndContext(t *testing.T) {
	a := newQueueAdapter(t)
	a.system = "kafka"
	cfg := &eventstream.Config{Mode: eventstream.ModeDistributed, MQ: a}
	b := quietBus(t, cfg)
	defer b.Close()
	gotCtx := make(chan any, 1)
	b.On("mq.ctx", func(ctx context.Context, _ *eventstream.Event) error {
		gotCtx <- ctx.Value(adapterCtxKey{})
		return nil
	})
	done := make(chan error, 1)
	if err := b.Emit(context.Background(), "mq.ctx", 1, eventstream.WithAsync(func(err error) { done <- err })); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the async callback was not called")
	}
	select {
	case v := <-gotCtx:
		if v != "from-adapter" {
			t.Fatalf("handler ctx value = %v, want the adapter's", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered")
	}
}

// History must not keep events alive: 200 events of 256 KiB leave the heap
// about where it was.
func TestHistoryDoesNotPinPayloads(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	var n atomic.Int64
	b.On("big", func(context.Context, *eventstream.Event) error { n.Add(1); return nil })
	before := heapInUse()
	for range 200 {
		b.Emit(context.Background(), "big", make([]byte, 256<<10))
	}
	waitFor(t, "delivery", 10*time.Second, func() bool { return n.Load() == 200 })
	if grow := int64(heapInUse()) - int64(before); grow > 8<<20 {
		t.Fatalf("heap grew by %d MiB after 200 events of 256 KiB", grow>>20)
	}
	if h := b.(eventstream.MemoryEventBus).GetHistory(1000); len(h) < 400 {
		t.Fatalf("history holds %d entries, want 400", len(h))
	}
}
