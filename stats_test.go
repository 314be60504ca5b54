package eventstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
)

// GetStats and GetHistory, read from the bus's own metrics and spans, match
// what happened: ten events, one that always fails (two retries, then the
// dead-letter topic) and one that fails once.
func TestStatsAndHistoryMatchWhatHappened(t *testing.T) {
	bus, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	var flaky atomic.Bool
	sub, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		var n int
		if err := e.Unmarshal(&n); err != nil {
			return err
		}
		switch {
		case n == 3:
			return errors.New("always fails")
		case n == 5 && !flaky.Swap(true):
			return errors.New("fails once")
		}
		return nil
	}, eventstream.WithConsumerGroup("billing"), eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: 2, BackoffStrategy: "constant", InitialDelay: time.Millisecond,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := bus.Emit(context.Background(), "orders", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Off(sub); err != nil {
		t.Fatal(err)
	}
	mb := bus.(eventstream.MemoryEventBus)
	st := mb.GetStats()
	row := func(topic, group string) eventstream.Stats {
		for _, r := range st.Rows {
			if r.Topic == topic && r.Group == group {
				return eventstream.Stats{Counts: r.Counts}
			}
		}
		t.Fatalf("no stats row %s/%s in %+v", topic, group, st.Rows)
		return eventstream.Stats{}
	}
	send, billing, dlq := row("orders", ""), row("orders", "billing"), row("orders.dlq", "")
	check := func(name string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	check("emitted", send.Emitted, 10)
	check("delivered", billing.Delivered, 10)
	check("succeeded attempts", billing.Succeeded, 9)
	check("failed attempts", billing.Failed, 4) // 3 for #3, 1 for #5
	check("retried", billing.Retried, 3)        // 2 for #3, 1 for #5
	check("dead-lettered", billing.DeadLettered, 1)
	check("in flight", billing.InFlight, 0)
	check("dead letters emitted", dlq.Emitted, 1)
	check("total emitted", st.Emitted, 11)
	if billing.LatencyP50 <= 0 || billing.LatencyP99 < billing.LatencyP50 {
		t.Errorf("latency percentiles p50 %v p99 %v", billing.LatencyP50, billing.LatencyP99)
	}

	h := mb.GetHistory(100)
	ops := map[string]int{}
	for _, e := range h {
		ops[e.Operation+"/"+e.Status]++
		// No tracer records (none is set up): entries carry no span ids.
		if e.TraceID != "" || e.SpanID != "" || e.EventID == "" {
			t.Errorf("history entry with span ids or without an event id: %+v", e)
		}
	}
	// 11 sends (10 + the dead letter), 13 process attempts, 4 of them failed.
	if ops["send/ok"] != 11 || ops["process/ok"] != 9 || ops["process/error"] != 4 {
		t.Errorf("history operations %v", ops)
	}
	if got := mb.GetHistory(5); len(got) != 5 {
		t.Errorf("GetHistory(5) returned %d entries", len(got))
	}
}
