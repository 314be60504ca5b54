package eventstream_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

func TestTiming(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	cfg := kafkaTestConfig(brokers)
	lvl := slog.LevelWarn
	if os.Getenv("DBG") != "" { lvl = slog.LevelDebug }
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	t0 := time.Now()
	b, err := eventstream.New(cfg, eventstream.WithLogger(logger))
	if err != nil { t.Fatal(err) }
	t.Logf("New %v", time.Since(t0))
	t0 = time.Now()
	got := make(chan struct{}, 100)
	s1, err := b.On("timing", func(ctx context.Context, e *eventstream.Event) error { got <- struct{}{}; return nil }, eventstream.WithConsumerGroup("g"))
	if err != nil { t.Fatal(err) }
	t.Logf("On1 %v", time.Since(t0))
	t0 = time.Now()
	_, err = b.On("timing", func(ctx context.Context, e *eventstream.Event) error { got <- struct{}{}; return nil }, eventstream.WithConsumerGroup("g"))
	if err != nil { t.Fatal(err) }
	t.Logf("On2 %v", time.Since(t0))
	t0 = time.Now()
	if err := b.Emit(context.Background(), "timing", 1); err != nil { t.Fatal(err) }
	<-got
	t.Logf("Emit→handler %v", time.Since(t0))
	t0 = time.Now()
	if err := b.Off(s1); err != nil { t.Fatal(err) }
	t.Logf("Off %v", time.Since(t0))
	t0 = time.Now()
	if err := b.Emit(context.Background(), "timing", 1); err != nil { t.Fatal(err) }
	<-got
	t.Logf("Emit→handler after off %v", time.Since(t0))
	t0 = time.Now()
	b.Close()
	t.Logf("Close %v", time.Since(t0))
}
