package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"libx.net/eventstream"
)

// Memory mode's retention: groups that join later start with the kept
// events.

func retainingBus(t *testing.T, events int, age time.Duration) eventstream.EventBus {
	t.Helper()
	cfg := eventstream.DefaultConfig()
	cfg.Memory.RetainEvents, cfg.Memory.RetainFor = events, age
	b := quietBus(t, cfg)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// ints collects the int payloads a subscription handled, in order.
type ints struct {
	mu  sync.Mutex
	got []int
}

func (c *ints) handler(_ context.Context, e *eventstream.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, e.Data.(int))
	return nil
}

func (c *ints) waitLen(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	waitFor(t, fmt.Sprintf("%d events", n), 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		out = append(out[:0], c.got...)
		return len(out) >= n
	})
	return out
}

func emitInts(t *testing.T, b eventstream.EventBus, topic string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := b.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRetentionOffByDefault(t *testing.T) {
	b := retainingBus(t, 0, 0)
	emitInts(t, b, "orders", 0, 3)
	var c ints
	if _, err := b.On("orders", c.handler); err != nil {
		t.Fatal(err)
	}
	emitInts(t, b, "orders", 3, 4)
	if got := c.waitLen(t, 1); fmt.Sprint(got) != "[3]" {
		t.Errorf("got %v, want only the event emitted after On", got)
	}
}

// A new group starts with the last RetainEvents events, oldest first, then
// the live ones; a second member of an existing group replays nothing.
func TestRetentionNewGroupStartsWithKept(t *testing.T) {
	b := retainingBus(t, 3, 0)
	emitInts(t, b, "orders", 0, 5)
	var first, second ints
	if _, err := b.On("orders", first.handler, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	if got := first.waitLen(t, 3); fmt.Sprint(got) != "[2 3 4]" {
		t.Errorf("new group got %v, want [2 3 4]", got)
	}
	if _, err := b.On("orders", second.handler, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	emitInts(t, b, "orders", 5, 6)
	waitFor(t, "the live event", 10*time.Second, func() bool {
		first.mu.Lock()
		second.mu.Lock()
		defer first.mu.Unlock()
		defer second.mu.Unlock()
		return len(first.got)+len(second.got) == 4
	})
	if len(second.got) > 1 {
		t.Errorf("a member joining an existing group replayed %v", second.got)
	}
}

// A named group whose last member left resumes with what it missed, not
// with what it handled; a subscription without a group gets everything kept.
func TestRetentionGroupResumes(t *testing.T) {
	b := retainingBus(t, 100, 0)
	var c ints
	sub, err := b.On("orders", c.handler, eventstream.WithConsumerGroup("billing"))
	if err != nil {
		t.Fatal(err)
	}
	emitInts(t, b, "orders", 0, 2)
	c.waitLen(t, 2)
	if err := b.Off(sub); err != nil {
		t.Fatal(err)
	}
	emitInts(t, b, "orders", 2, 4) // while billing has no member
	var back, own ints
	if _, err := b.On("orders", back.handler, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	if got := back.waitLen(t, 2); fmt.Sprint(got) != "[2 3]" {
		t.Errorf("returning group got %v, want [2 3]", got)
	}
	if _, err := b.On("orders", own.handler); err != nil {
		t.Fatal(err)
	}
	if got := own.waitLen(t, 4); fmt.Sprint(got) != "[0 1 2 3]" {
		t.Errorf("a subscription of its own got %v, want [0 1 2 3]", got)
	}
}

func TestRetentionAge(t *testing.T) {
	b := retainingBus(t, 100, 20*time.Millisecond)
	emitInts(t, b, "orders", 0, 2)
	time.Sleep(50 * time.Millisecond)
	emitInts(t, b, "orders", 2, 3)
	var c ints
	if _, err := b.On("orders", c.handler); err != nil {
		t.Fatal(err)
	}
	if got := c.waitLen(t, 1); fmt.Sprint(got) != "[2]" {
		t.Errorf("got %v, want only the event younger than RetainFor", got)
	}
}

// A group joining while events are emitted sees each exactly once, in
// order: every event is either in the log it replays or pushed to it.
func TestRetentionJoinRacingEmit(t *testing.T) {
	const n = 3000
	b := retainingBus(t, n, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := b.Emit(context.Background(), "orders", i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var groups [4]ints
	for i := range groups {
		time.Sleep(time.Millisecond)
		if _, err := b.On("orders", groups[i].handler, eventstream.WithConsumerGroup(fmt.Sprint("g", i))); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	for i := range groups {
		got := groups[i].waitLen(t, n)
		for j, v := range got {
			if v != j {
				t.Fatalf("group %d: event %d is %d (of %d), want every event once, in order", i, j, v, len(got))
			}
		}
	}
}

func TestRetentionConfig(t *testing.T) {
	for _, c := range []struct {
		events int
		age    time.Duration
		field  string
	}{{-1, 0, "Memory.RetainEvents"}, {0, time.Second, "Memory.RetainFor"}, {1, -time.Second, "Memory.RetainFor"}} {
		cfg := eventstream.DefaultConfig()
		cfg.Memory.RetainEvents, cfg.Memory.RetainFor = c.events, c.age
		_, err := eventstream.New(cfg)
		var ce *eventstream.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("RetainEvents %d, RetainFor %v: err = %v, want a ConfigError on %s", c.events, c.age, err, c.field)
		}
	}
}

// With retention, the events a group's last member leaves unhandled are
// not lost: the group resumes with them when it comes back.
func TestRetentionGroupResumesWithUnhandled(t *testing.T) {
	cfg := eventstream.DefaultConfig()
	cfg.Memory.RetainEvents = 100
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b := quietBus(t, cfg)
	defer b.Close()
	release := make(chan struct{})
	var first ints
	sub, err := b.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		<-release // the first event is in hand while its member leaves
		return first.handler(ctx, e)
	}, eventstream.WithConsumerGroup("billing"))
	if err != nil {
		t.Fatal(err)
	}
	emitInts(t, b, "orders", 0, 3)
	off := make(chan error, 1)
	go func() { off <- b.Off(sub) }()
	time.Sleep(300 * time.Millisecond) // past ShutdownTimeout: 1 and 2 are left unhandled
	close(release)
	if err := <-off; err != nil {
		t.Fatalf("Off: %v", err)
	}
	if got := first.waitLen(t, 1); fmt.Sprint(got) != "[0]" {
		t.Fatalf("first member handled %v, want [0]", got)
	}
	var back ints
	if _, err := b.On("orders", back.handler, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	if got := back.waitLen(t, 2); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("returning group got %v, want the unhandled [1 2]", got)
	}
}
