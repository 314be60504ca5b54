package eventstream_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"libx.net/eventstream"
)

// Zero fields take the defaults, whichever way the config is written.
func TestConfigZeroFieldsTakeDefaults(t *testing.T) {
	cases := []struct {
		name          string
		cfg           *eventstream.Config
		history, stat bool
	}{
		{"nil", nil, true, true},
		{"empty Config", &eventstream.Config{}, true, true},
		{"partial MemoryConfig", &eventstream.Config{Memory: &eventstream.MemoryConfig{BufferSize: 10}}, true, true},
		{"DefaultConfig", eventstream.DefaultConfig(), true, true},
		{"DisableHistory", &eventstream.Config{Memory: &eventstream.MemoryConfig{DisableHistory: true}}, false, true},
		{"DisableMetrics", &eventstream.Config{Memory: &eventstream.MemoryConfig{DisableMetrics: true}}, true, false},
		{"literal flags", &eventstream.Config{Memory: &eventstream.MemoryConfig{EnableHistory: true}}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := quietBus(t, c.cfg)
			defer b.Close()
			done := make(chan struct{}, 1)
			b.On("cfg", func(context.Context, *eventstream.Event) error { done <- struct{}{}; return nil })
			if err := b.Emit(context.Background(), "cfg", 1); err != nil {
				t.Fatal(err)
			}
			<-done
			mb := b.(eventstream.MemoryEventBus)
			var h []eventstream.HistoryEntry
			var s eventstream.Stats
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				h, s = mb.GetHistory(10), mb.GetStats()
				if (!c.history || len(h) == 2) && (!c.stat || s.Succeeded == 1) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if got := len(h) > 0; got != c.history {
				t.Errorf("history on = %v (%d entries), want %v", got, len(h), c.history)
			}
			if got := s.Emitted > 0; got != c.stat {
				t.Errorf("stats on = %v (%+v), want %v", got, s, c.stat)
			}
		})
	}
}

func TestWithDeadLetterTopicNil(t *testing.T) {
	_, err := eventstream.New(nil, eventstream.WithDeadLetterTopic(nil))
	if !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Fatalf("WithDeadLetterTopic(nil): %v", err)
	}
}

// Messages name what failed once, without a doubled package prefix.
func TestConfigErrorMessages(t *testing.T) {
	cfg := eventstream.DefaultConfig()
	cfg.Retry = &eventstream.RetryPolicy{MaxRetries: -1}
	_, err := eventstream.New(cfg)
	if err == nil || !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Fatalf("New: %v", err)
	}
	if n := countSubstr(err.Error(), "eventstream:"); n != 1 {
		t.Errorf("%q repeats the package prefix", err)
	}
	b := quietBus(t, nil)
	defer b.Close()
	_, err = b.On("t", func(context.Context, *eventstream.Event) error { return nil }, eventstream.WithConsumerGroup("bad group"))
	if err == nil || countSubstr(err.Error(), "eventstream:") != 1 {
		t.Errorf("WithConsumerGroup: %v", err)
	}
}

func countSubstr(s, sub string) int {
	n := 0
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
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
