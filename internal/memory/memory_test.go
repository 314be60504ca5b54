package memory

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

func newTransport(t *testing.T, queue int) *Transport {
	t.Helper()
	s, err := lanes.NewScheduler(4, time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(5 * time.Second) })
	return New(transport.Host{Logger: slog.New(slog.DiscardHandler), BaseCtx: context.Background(),
		ShutdownTimeout: time.Second, QueueSize: queue, Sched: s})
}

func sub(topic, group string, deliver func(*event.Event)) *transport.Sub {
	return &transport.Sub{ID: group, Topic: topic, Group: group, Concurrency: 1,
		Deliver: func(_ context.Context, e *event.Event, _ error) error { deliver(e); return nil }}
}

// A topic's routes disappear with its last subscription: memory per topic
// is bounded by what is subscribed.
func TestRoutesFreedWithLastSubscription(t *testing.T) {
	tr := newTransport(t, 10)
	a, b := sub("t", "a", func(*event.Event) {}), sub("t", "b", func(*event.Event) {})
	for _, s := range []*transport.Sub{a, b} {
		if err := tr.Subscribe(s); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tr.groups("t")); n != 2 {
		t.Fatalf("%d groups, want 2", n)
	}
	tr.Unsubscribe(a)
	if n := len(tr.groups("t")); n != 1 {
		t.Fatalf("%d groups after one left, want 1", n)
	}
	tr.Unsubscribe(b)
	if _, ok := tr.topics.Load("t"); ok {
		t.Fatal("the topic's routes outlived its last subscription")
	}
}

// Every group gets the event; members of one group share it.
func TestGroupsAndMembers(t *testing.T) {
	tr := newTransport(t, 10)
	var a1, a2, b atomic.Int64
	subs := []*transport.Sub{
		sub("t", "a", func(*event.Event) { a1.Add(1) }),
		sub("t", "a", func(*event.Event) { a2.Add(1) }),
		sub("t", "b", func(*event.Event) { b.Add(1) }),
	}
	for _, s := range subs {
		if err := tr.Subscribe(s); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		if err := tr.Publish(context.Background(), event.New("t", nil), transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for (a1.Load()+a2.Load() != 100 || b.Load() != 100) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if a1.Load()+a2.Load() != 100 || b.Load() != 100 || a1.Load() == 0 || a2.Load() == 0 {
		t.Fatalf("group a: %d + %d, group b: %d", a1.Load(), a2.Load(), b.Load())
	}
}

// A full lane makes Publish wait and fail with the group named; Overflow
// does not wait; after Drain gives up, Publish is refused.
func TestFullLaneOverflowAndDrain(t *testing.T) {
	tr := newTransport(t, 1)
	release := make(chan struct{})
	s := sub("t", "slow", func(*event.Event) { <-release })
	if err := tr.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := tr.Publish(ctx, event.New("t", nil), transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	var full *FullError
	if err := tr.Publish(short, event.New("t", nil), transport.PublishOptions{}); !errors.As(err, &full) || full.Group != "slow" {
		t.Fatalf("Publish to a full lane = %v", err)
	}
	if err := tr.Publish(ctx, event.New("t", nil), transport.PublishOptions{Overflow: true}); err != nil {
		t.Fatalf("overflow Publish = %v", err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer dcancel()
	if n := tr.Drain(dctx); n != 2 {
		t.Fatalf("Drain left %d unhandled, want 2 (in hand and queued)", n)
	}
	if err := tr.Publish(ctx, event.New("t", nil), transport.PublishOptions{Overflow: true}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Publish after Drain = %v", err)
	}
	close(release)
	_ = tr.Close(ctx)
}

// A member that is leaving still reports its queue: its events are the
// group's until they are handled or handed over.
func TestLeavingMemberReportsItsQueue(t *testing.T) {
	tr := newTransport(t, 10)
	release := make(chan struct{})
	s := sub("t", "g", func(*event.Event) { <-release })
	if err := tr.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if err := tr.Publish(ctx, event.New("t", nil), transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	left := make(chan error, 1)
	go func() { left <- tr.Unsubscribe(s) }()
	time.Sleep(20 * time.Millisecond)
	if n := tr.QueueDepth(s); n != 3 {
		t.Errorf("QueueDepth of a leaving member = %d, want 3", n)
	}
	ages := 0
	tr.ReportAge(time.Now(), func(topic, group string, _ time.Duration) { ages++ })
	if ages != 1 {
		t.Errorf("ReportAge saw %d groups, want the leaving member's", ages)
	}
	close(release)
	if err := <-left; err != nil {
		t.Fatal(err)
	}
	_ = tr.Close(ctx)
}
