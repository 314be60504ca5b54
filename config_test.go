package eventstream_test

import (
	"context"
	"errors"
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
