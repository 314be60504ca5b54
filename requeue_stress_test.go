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

	"go.uber.org/goleak"

	"libx.net/eventstream"
)

// The stress test of hand-backs, beside TestHandlerChainsUnderTinyPools and
// TestLeavingUnderTinyPools: on pools of 1 to 4 workers and lanes of 2
// events, keyed and keyless events flow to a group of two members whose
// handlers hand events back (Requeue, RequeueAfter), and to a group behind
// a circuit breaker whose dependency is down for a while and whose handler
// also hands events back. Every event is handled exactly once per group
// (or, for the breaker's group, dead-lettered instead, by attempts that ran
// before the circuit opened), a key's events run in emit order, Close
// drains without a ShutdownError and the goroutines come back to where
// they were: nothing lost, nothing stuck.
func TestRequeuesUnderTinyPools(t *testing.T) {
	for pool := 1; pool <= 4; pool++ {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			stressRequeues(t, pool)
		})
	}
}

type requeueItem struct {
	Key string
	Seq int
}

func stressRequeues(t *testing.T, pool int) {
	var logs syncBuffer
	b := quietBus(t, smallConfig(pool, 2),
		eventstream.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	const topic, keys, n = "requeued", 6, 600
	var (
		mu      sync.Mutex
		handled = map[string]map[string]int{} // group → "key/seq" → times handled
		lastSeq = map[string]map[string]int{} // group → key → last seq handled
		faults  []string
		dead    = map[string]int{} // group → dead letters
	)
	for _, g := range []string{"r", "c"} {
		handled[g], lastSeq[g] = map[string]int{}, map[string]int{}
	}
	done := func(group string, it requeueItem) {
		mu.Lock()
		defer mu.Unlock()
		id := fmt.Sprintf("%s/%d", it.Key, it.Seq)
		handled[group][id]++
		if it.Key == "" {
			return
		}
		if last, ok := lastSeq[group][it.Key]; ok && it.Seq <= last {
			faults = append(faults, fmt.Sprintf("group %s: key %s ran %d after %d", group, it.Key, it.Seq, last))
		}
		lastSeq[group][it.Key] = it.Seq
	}
	// handBack: the first deliveries of one event in three are handed back,
	// at once or after a short wait, once or twice.
	handBack := func(e *eventstream.Event, it requeueItem) error {
		switch {
		case it.Seq%3 == 0 && e.Redelivery < 2:
			return eventstream.Requeue("not yet")
		case it.Seq%3 == 1 && e.Redelivery == 0:
			return eventstream.RequeueAfter(time.Millisecond, "later")
		}
		return nil
	}
	for range 2 { // group r: two members
		if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
			var it requeueItem
			if err := e.Unmarshal(&it); err != nil {
				return err
			}
			if err := handBack(e, it); err != nil {
				return err
			}
			done("r", it)
			return nil
		}, eventstream.WithConsumerGroup("r"), eventstream.WithConcurrency(2)); err != nil {
			t.Fatal(err)
		}
	}
	var outage atomic.Bool
	outage.Store(true)
	time.AfterFunc(50*time.Millisecond, func() { outage.Store(false) })
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if outage.Load() {
			return errors.New("dependency down")
		}
		var it requeueItem
		if err := e.Unmarshal(&it); err != nil {
			return err
		}
		if err := handBack(e, it); err != nil {
			return err
		}
		done("c", it)
		return nil
	}, eventstream.WithConsumerGroup("c"), eventstream.WithConcurrency(2),
		eventstream.WithCircuitBreaker(eventstream.CircuitBreaker{ConsecutiveFailures: 2, CoolDown: 10 * time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(topic+".dlq", func(_ context.Context, e *eventstream.Event) error {
		mu.Lock()
		dead[e.Header(eventstream.HeaderDeadLetterGroup)]++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seq := map[string]int{}
	for i := range n {
		key := ""
		if i%4 != 0 { // one event in four has no key
			key = fmt.Sprint("k", i%keys)
		}
		it := requeueItem{Key: key, Seq: seq[key]}
		seq[key]++
		var opts []eventstream.EmitOption
		if key != "" {
			opts = append(opts, eventstream.WithKey(key))
		}
		if err := b.Emit(ctx, topic, it, opts...); err != nil {
			t.Fatalf("Emit %d: %v", i, err)
		}
	}
	waitFor(t, "every event handled once per group, or dead-lettered", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled["r"]) == n && len(handled["c"])+dead["c"] == n
	})
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for g, ids := range handled {
		for id, times := range ids {
			if times != 1 {
				t.Errorf("group %s handled %s %d times", g, id, times)
			}
		}
	}
	if len(handled["c"])+dead["c"] != n || dead["r"] != 0 {
		t.Errorf("group c: %d handled + %d dead-lettered of %d; group r: %d dead letters", len(handled["c"]), dead["c"], n, dead["r"])
	}
	if !strings.Contains(logs.String(), "circuit open") {
		t.Errorf("group c's circuit never opened; logs:\n%s", logs.String())
	}
	if dead["c"] >= n/4 {
		t.Errorf("group c dead-lettered %d of %d events in an outage its circuit should have held", dead["c"], n)
	}
	if len(faults) > 0 {
		t.Fatalf("%d order faults, first ones: %v", len(faults), faults[:min(len(faults), 5)])
	}
}
