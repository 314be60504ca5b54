package middleware_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

// A redelivered event whose first delivery succeeded is acknowledged
// without reaching the handler, counted and logged at Debug.
func TestDedupAcknowledgesDuplicate(t *testing.T) {
	var buf bytes.Buffer
	d := middleware.NewDedup(middleware.DedupLogger(jsonLogger(&buf, slog.LevelDebug)))
	calls := 0
	h := d.Middleware(func(context.Context, *event.Event) error { calls++; return nil })
	e := event.New("orders", nil)
	for range 3 {
		if err := h(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 || d.Duplicates() != 2 {
		t.Errorf("calls = %d, duplicates = %d; want 1 and 2", calls, d.Duplicates())
	}
	recs := records(t, &buf)
	if len(recs) != 2 || recs[0]["level"] != "DEBUG" || recs[0]["event_id"] != e.ID {
		t.Errorf("records = %v, want two DEBUG records naming the event", recs)
	}
	if err := h(context.Background(), event.New("orders", nil)); err != nil || calls != 2 {
		t.Errorf("another id: err = %v, calls = %d; want it handled", err, calls)
	}
}

// A failure records nothing: the retry, and a later replay, are new.
func TestDedupRecordsOnlySuccess(t *testing.T) {
	d := middleware.NewDedup()
	fail := true
	calls := 0
	h := d.Middleware(func(context.Context, *event.Event) error {
		calls++
		if fail {
			return errBoom
		}
		return nil
	})
	e := event.New("orders", nil)
	if err := h(context.Background(), e); err != errBoom {
		t.Fatalf("err = %v, want the handler's error unchanged", err)
	}
	fail = false
	if err := h(context.Background(), e); err != nil || calls != 2 {
		t.Errorf("after a failure: err = %v, calls = %d; want the event handled again", err, calls)
	}
	if d.Duplicates() != 0 {
		t.Errorf("duplicates = %d, want 0", d.Duplicates())
	}
}

// Two deliveries of one id at once: one handles it, the other waits and is
// then a duplicate.
func TestDedupConcurrentDeliveries(t *testing.T) {
	d := middleware.NewDedup()
	var calls atomic.Int32
	release := make(chan struct{})
	h := d.Middleware(func(context.Context, *event.Event) error {
		calls.Add(1)
		<-release
		return nil
	})
	e := event.New("orders", nil)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := h(context.Background(), e); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(10 * time.Millisecond) // let both arrive
	close(release)
	wg.Wait()
	if calls.Load() != 1 || d.Duplicates() != 1 {
		t.Errorf("calls = %d, duplicates = %d; want 1 and 1", calls.Load(), d.Duplicates())
	}
}

// Scopes keep subscriptions that share a store apart.
func TestDedupScope(t *testing.T) {
	store := middleware.NewMemoryDedupStore(10)
	a := middleware.NewDedup(middleware.DedupWithStore(store), middleware.DedupScope("billing"))
	b := middleware.NewDedup(middleware.DedupWithStore(store), middleware.DedupScope("shipping"))
	calls := 0
	ok := func(context.Context, *event.Event) error { calls++; return nil }
	e := event.New("orders", nil)
	_ = a.Middleware(ok)(context.Background(), e)
	_ = b.Middleware(ok)(context.Background(), e)
	if calls != 2 {
		t.Errorf("calls = %d, want each scope to handle the event once", calls)
	}
}

type failingStore struct{}

func (failingStore) Seen(context.Context, string) (bool, error) { return false, errBoom }
func (failingStore) Record(context.Context, string, time.Duration) error {
	return errBoom
}

// A store that fails loses nothing: the event is handled, the failures logged.
func TestDedupStoreFailure(t *testing.T) {
	var buf bytes.Buffer
	d := middleware.NewDedup(middleware.DedupWithStore(failingStore{}), middleware.DedupLogger(jsonLogger(&buf, slog.LevelInfo)))
	calls := 0
	err := d.Middleware(func(context.Context, *event.Event) error { calls++; return nil })(context.Background(), event.New("t", nil))
	if err != nil || calls != 1 {
		t.Errorf("err = %v, calls = %d; want the event handled", err, calls)
	}
	if recs := records(t, &buf); len(recs) != 2 || recs[0]["level"] != "WARN" {
		t.Errorf("records = %v, want two WARN records", recs)
	}
}

// The memory store is bounded: the oldest key goes first, and a key is
// forgotten after its window.
func TestMemoryDedupStoreBounded(t *testing.T) {
	ctx := context.Background()
	s := middleware.NewMemoryDedupStore(3)
	for i := range 5 {
		_ = s.Record(ctx, fmt.Sprint(i), time.Hour)
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if got, _ := s.Seen(ctx, fmt.Sprint(i)); got != want {
			t.Errorf("Seen(%d) = %v, want %v", i, got, want)
		}
	}
	_ = s.Record(ctx, "short", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if got, _ := s.Seen(ctx, "short"); got {
		t.Error("a key is still seen after its window")
	}
}

// Deduplicating a subscription: the second delivery of an event that was
// handled is acknowledged without calling the handler.
func ExampleDedup() {
	dedup := middleware.NewDedup(middleware.DedupWindow(time.Hour))
	h := dedup.Middleware(func(ctx context.Context, e *event.Event) error {
		fmt.Println("charging order", e.Key)
		return nil
	})
	e := &event.Event{ID: "0190a3c2-0000-7000-8000-000000000001", Topic: "orders", Key: "42"}
	fmt.Println(h(context.Background(), e))
	fmt.Println(h(context.Background(), e)) // redelivered
	fmt.Println("duplicates:", dedup.Duplicates())
	// With the bus: bus.On("orders", handler,
	//     eventstream.WithSubscriptionMiddleware(dedup.Middleware))
	// Output:
	// charging order 42
	// <nil>
	// <nil>
	// duplicates: 1
}
