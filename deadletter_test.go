package eventstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
)

// The dead-letter path (deadletter.go).

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
