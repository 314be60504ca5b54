package eventstream_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

func memoryTransport(opts ...eventstream.Option) eventstreamtest.Transport {
	return eventstreamtest.Transport{
		Backpressure: true,
		New: func(t *testing.T, s eventstreamtest.Setup) eventstream.EventBus {
			cfg := eventstream.DefaultConfig()
			if s.BufferSize > 0 {
				cfg.Memory.BufferSize = s.BufferSize
			}
			if s.ShutdownTimeout > 0 {
				cfg.ShutdownTimeout = s.ShutdownTimeout
			}
			b, err := eventstream.New(cfg, append(append([]eventstream.Option(nil), opts...), s.Options...)...)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

func TestMemoryConformance(t *testing.T) {
	eventstreamtest.Run(t, memoryTransport())
}

func TestMemoryConformanceWithoutTelemetry(t *testing.T) {
	eventstreamtest.Run(t, memoryTransport(eventstream.WithoutTelemetry()))
}

func TestConfigValidation(t *testing.T) {
	cases := map[string]*eventstream.Config{
		"unknown mode":        {Mode: "carrier-pigeon"},
		"negative pool":       {Pool: eventstream.PoolConfig{Size: -1}},
		"negative expiry":     {Pool: eventstream.PoolConfig{ExpiryDuration: -time.Second}},
		"negative buffer":     {Memory: &eventstream.MemoryConfig{BufferSize: -5}},
		"negative history":    {Memory: &eventstream.MemoryConfig{MaxHistorySize: -1}},
		"negative shutdown":   {ShutdownTimeout: -time.Second},
		"nonsense retry":      {Retry: &eventstream.RetryPolicy{MaxRetries: 2, BackoffStrategy: "sometimes"}},
		"shrinking backoff":   {Retry: &eventstream.RetryPolicy{MaxRetries: 2, Multiplier: 0.5, InitialDelay: time.Second}},
		"max below initial":   {Retry: &eventstream.RetryPolicy{MaxRetries: 2, InitialDelay: time.Second, MaxDelay: time.Millisecond}},
		"prealloc, no bounds": {Pool: eventstream.PoolConfig{Size: 10, PreAlloc: true, ExpiryDuration: -1}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := eventstream.New(cfg)
			if !errors.Is(err, eventstream.ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
			if b != nil {
				t.Fatal("New returned a bus with its error")
			}
			var ce *eventstream.ConfigError
			if !errors.As(err, &ce) || ce.Field == "" {
				t.Fatalf("error %v does not name the field", err)
			}
		})
	}
	if _, err := eventstream.New(eventstream.DefaultConfig(), nil); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Fatalf("nil option: %v", err)
	}
	if _, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithMiddleware(nil)); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Fatalf("nil middleware: %v", err)
	}
}

func TestConfigNotModified(t *testing.T) {
	cfg := &eventstream.Config{Mode: "memory"}
	b, err := eventstream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if cfg.Memory != nil || cfg.Pool.Size != 0 {
		t.Fatalf("New changed the caller's config: %+v", cfg)
	}
}

func TestDistributedNeedsKafka(t *testing.T) {
	_, err := eventstream.New(&eventstream.Config{Mode: "distributed"})
	if !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Fatalf("distributed without brokers: %v, want ErrInvalidConfig", err)
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
