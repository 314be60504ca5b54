package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// The bus's lifecycle (core.go): Emit, On, Off and Close, from awkward
// places too. Memory mode unless named; Kafka mode's are in the kafka_ files.

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

// Both modes agree on a done context: Emit fails with its error, before
// anything happens, and delivers nothing; the next Emit works. (That a
// cancelled produce takes no other record with it is the Kafka transport's
// own test.)
func TestEmitCancelledContext(t *testing.T) {
	eachMode(t, nil, func(t *testing.T, b eventstream.EventBus) {
		topic := eventstreamtest.Topic(t)
		got := newEvents()
		if _, err := b.On(topic, got.handler); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := b.Emit(ctx, topic, "cancelled"); err != context.Canceled {
			t.Fatalf("Emit with a cancelled ctx = %v, want context.Canceled itself", err)
		}
		if err := b.Emit(context.Background(), topic, "next"); err != nil {
			t.Fatal(err)
		}
		if e := got.wait(t, 1)[0]; e.Data != "next" {
			t.Fatalf("got %v first", e.Data)
		}
		//lint:ignore SA1012 a nil context is the bad input under test
		if err := b.Emit(nil, topic, 3); !errors.Is(err, eventstream.ErrNilContext) { //nolint:staticcheck
			t.Fatalf("Emit(nil ctx) = %v", err)
		}
	})
}

func TestOffAfterClose(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	sub, _ := b.On("x", func(context.Context, *eventstream.Event) error { return nil })
	b.Close()
	if err := b.Off(sub); !errors.Is(err, eventstream.ErrClosed) {
		t.Fatalf("Off after Close = %v, want ErrClosed", err)
	}
}

// A handler that ignores its context cannot hold Close beyond the shutdown
// timeout, and Close says how many events it gave up on.
func TestCloseTimeoutReportsUnhandled(t *testing.T) {
	cfg := eventstream.DefaultConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b, err := eventstream.New(cfg, eventstream.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	var started atomic.Int32
	if _, err := b.On("slow", func(ctx context.Context, e *eventstream.Event) error {
		started.Add(1)
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := b.Emit(context.Background(), "slow", i); err != nil {
			t.Fatal(err)
		}
	}
	err = b.Close()
	var se *eventstream.ShutdownError
	if !errors.As(err, &se) || !errors.Is(err, eventstream.ErrShutdownTimeout) {
		t.Fatalf("Close: %v, want a ShutdownError", err)
	}
	if se.Unhandled != 5 {
		t.Fatalf("Unhandled = %d, want 5 (one stuck in the handler, four queued)", se.Unhandled)
	}
}

// Off racing with Emit: events routed to the leaving member's lane after it
// closed are re-routed to the group's other member; none is lost or doubled.
func TestOffRacingEmitLosesNothing(t *testing.T) {
	b, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	h := func(ctx context.Context, e *eventstream.Event) error {
		mu.Lock()
		seen[e.ID]++
		mu.Unlock()
		return nil
	}
	group := eventstream.WithConsumerGroup("g")
	leaving, err := b.On("race", h, group, eventstream.WithConcurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.On("race", h, group); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if err := b.Emit(context.Background(), "race", i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		time.Sleep(time.Millisecond)
		if err := b.Off(leaving); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("group handled %d distinct events, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %s handled %d times", id, c)
		}
	}
}

// Memory mode honours WithAsync too.
func TestMemoryAsyncEmitCallsDone(t *testing.T) {
	b, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	called := 0
	async := eventstream.WithAsync(func(err error) {
		if err == nil {
			called++
		}
	})
	if err := b.Emit(context.Background(), "t", 1, async); err != nil {
		t.Fatal(err)
	}
	if called != 1 {
		t.Fatalf("done called %d times", called)
	}
}
