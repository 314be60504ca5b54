package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"libx.net/eventstream"
)

// Leaving loses nothing: Off from the subscription's own handler, from
// another subscription's handler, Off racing Close, and members joining and
// leaving a group. Memory mode.

// Off from one of the subscription's own handlers returns without waiting
// for the caller, and what was queued for the subscription is still handled.
func TestOffFromOwnHandlerHandlesQueued(t *testing.T) {
	for _, conc := range []int{1, 3} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			b := quietBus(t, smallConfig(4, 100))
			const n = 13
			var handled atomic.Int64
			ready := make(chan struct{})
			offErr := make(chan error, 1)
			var sub eventstream.Subscription
			// Not a sync.Once: the other lanes' handlers would wait in
			// Once.Do for an Off that waits for them.
			var first atomic.Bool
			var err error
			sub, err = b.On("own.off", func(context.Context, *eventstream.Event) error {
				<-ready
				if first.CompareAndSwap(false, true) {
					offErr <- b.Off(sub)
				}
				handled.Add(1)
				return nil
			}, eventstream.WithConcurrency(conc))
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := b.Emit(context.Background(), "own.off", i); err != nil {
					t.Fatal(err)
				}
			}
			close(ready)
			select {
			case err := <-offErr:
				if err != nil {
					t.Fatalf("Off: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Off from the subscription's own handler did not return")
			}
			waitFor(t, "every accepted event handled", 5*time.Second, func() bool { return handled.Load() == n })
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// Off(B) from a handler of A waits for B's handler in flight and drops
// nothing of B's queue.
func TestOffFromOtherHandlerWaitsForIt(t *testing.T) {
	b := quietBus(t, smallConfig(4, 100))
	defer b.Close()
	started, release := make(chan struct{}), make(chan struct{})
	var bHandled atomic.Int64
	var bFinished atomic.Bool
	var once sync.Once
	subB, err := b.On("b", func(context.Context, *eventstream.Event) error {
		once.Do(func() {
			close(started)
			<-release
			time.Sleep(20 * time.Millisecond)
			bFinished.Store(true)
		})
		bHandled.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		err      error
		finished bool
	}
	offDone := make(chan result, 1)
	if _, err := b.On("a", func(context.Context, *eventstream.Event) error {
		err := b.Off(subB)
		offDone <- result{err, bFinished.Load()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const n = 9
	for i := range n {
		if err := b.Emit(context.Background(), "b", i); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	if err := b.Emit(context.Background(), "a", 0); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { close(release) })
	select {
	case r := <-offDone:
		if r.err != nil {
			t.Fatalf("Off(B) from A's handler: %v", r.err)
		}
		if !r.finished {
			t.Fatal("Off(B) from A's handler returned while B's handler was still running")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Off(B) from A's handler did not return")
	}
	waitFor(t, "B's queue handled", 5*time.Second, func() bool { return bHandled.Load() == n })
}

// With one worker, held by A's handler, Off(B) from A's handler cannot wait
// for B's queue (nothing can run it): it returns, and B handles its queue
// once the worker is free.
func TestOffFromOtherHandlerOnOneWorker(t *testing.T) {
	cfg := smallConfig(1, 100)
	cfg.ShutdownTimeout = 30 * time.Second
	b := quietBus(t, cfg)
	var bHandled atomic.Int64
	subB, err := b.On("b", func(context.Context, *eventstream.Event) error { bHandled.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	offDone := make(chan error, 1)
	if _, err := b.On("a", func(context.Context, *eventstream.Event) error {
		<-gate
		offDone <- b.Off(subB)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), "a", 0); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		if err := b.Emit(context.Background(), "b", i); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	select {
	case err := <-offDone:
		if err != nil {
			t.Fatalf("Off: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Off(B) from A's handler held the only worker")
	}
	waitFor(t, "B's queue handled", 5*time.Second, func() bool { return bHandled.Load() == n })
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// Close while a subscription is leaving drains what it holds: nothing is
// cut off, and no handler sees its context cancelled, within the timeout.
func TestOffRacingClose(t *testing.T) {
	for _, from := range []string{"outside", "own handler"} {
		t.Run(from, func(t *testing.T) {
			b := quietBus(t, smallConfig(4, 100))
			const n = 60
			var handled, cancelled atomic.Int64
			ready := make(chan struct{})
			offCalled := make(chan struct{})
			var once sync.Once
			var sub eventstream.Subscription
			var err error
			sub, err = b.On("leaving", func(ctx context.Context, _ *eventstream.Event) error {
				<-ready
				if from == "own handler" {
					once.Do(func() {
						if err := b.Off(sub); err != nil {
							t.Errorf("Off: %v", err)
						}
						close(offCalled)
					})
				}
				time.Sleep(5 * time.Millisecond)
				if ctx.Err() != nil {
					cancelled.Add(1)
				}
				handled.Add(1)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := b.Emit(context.Background(), "leaving", i); err != nil {
					t.Fatal(err)
				}
			}
			close(ready)
			var wg sync.WaitGroup
			if from == "outside" {
				wg.Go(func() {
					if err := b.Off(sub); err != nil && !errors.Is(err, eventstream.ErrClosed) {
						t.Errorf("Off: %v", err)
					}
				})
				time.Sleep(10 * time.Millisecond)
			} else {
				<-offCalled
			}
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			wg.Wait()
			if handled.Load() != n || cancelled.Load() != 0 {
				t.Fatalf("%d of %d events handled, %d handlers saw their context cancelled", handled.Load(), n, cancelled.Load())
			}
		})
	}
}

// Close cuts off a leaving subscription's queue only when ShutdownTimeout
// runs out, and counts what it cut off.
func TestCloseCountsLeavingCutOff(t *testing.T) {
	cfg := smallConfig(4, 100)
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b := quietBus(t, cfg)
	const n = 20
	var handled atomic.Int64
	offCalled := make(chan struct{})
	var once sync.Once
	var sub eventstream.Subscription
	ready := make(chan struct{})
	var err error
	sub, err = b.On("cut.leaving", func(ctx context.Context, _ *eventstream.Event) error {
		<-ready
		once.Do(func() {
			if err := b.Off(sub); err != nil {
				t.Errorf("Off: %v", err)
			}
			close(offCalled)
		})
		select {
		case <-time.After(30 * time.Millisecond):
			handled.Add(1)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := b.Emit(context.Background(), "cut.leaving", i); err != nil {
			t.Fatal(err)
		}
	}
	close(ready)
	<-offCalled
	err = b.Close()
	var se *eventstream.ShutdownError
	if !errors.As(err, &se) || int(handled.Load())+se.Unhandled != n {
		t.Fatalf("Close = %v with %d of %d events handled: want a ShutdownError counting the rest", err, handled.Load(), n)
	}
}

// The last member of a group that cannot finish its queue within the
// shutdown timeout says how many events it discarded: Off returns a
// ShutdownError.
func TestOffLastMemberCountsWhatItDiscards(t *testing.T) {
	cfg := smallConfig(4, 100)
	cfg.ShutdownTimeout = 50 * time.Millisecond
	b := quietBus(t, cfg)
	defer b.Close()
	started := make(chan struct{})
	var handled atomic.Int64
	var once sync.Once
	sub, err := b.On("slow.last", func(context.Context, *eventstream.Event) error {
		once.Do(func() {
			close(started)
			time.Sleep(4 * cfg.ShutdownTimeout)
		})
		handled.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if err := b.Emit(context.Background(), "slow.last", i); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	err = b.Off(sub)
	var se *eventstream.ShutdownError
	if !errors.As(err, &se) || int(handled.Load())+se.Unhandled != n {
		t.Fatalf("Off = %v after %d of %d events handled: want a ShutdownError counting the rest", err, handled.Load(), n)
	}
}

// A subscription without a group that leaves from its own handler (the
// handle-once pattern) folds into the ended series like any other.
func TestHandleOnceFoldsIntoEnded(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	const cycles = 50
	for i := range cycles {
		done := make(chan struct{})
		var sub eventstream.Subscription
		var err error
		sub, err = b.On("once", func(context.Context, *eventstream.Event) error {
			defer close(done)
			return b.Off(sub)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Emit(context.Background(), "once", i); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	waitFor(t, "the handle-once rows folded", 5*time.Second, func() bool {
		st := b.(eventstream.MemoryEventBus).GetStats()
		return len(st.Rows) <= 2 && st.Succeeded == cycles
	})
}

// Members of mixed concurrency join and leave a group while keyed events
// flow: within a member, a key runs one at a time and in emit order, and
// every event is handled exactly once.
func TestKeyOrderWithinMemberAcrossMembershipChange(t *testing.T) {
	b := quietBus(t, smallConfig(8, 1000))
	const keys, perKey = 16, 60
	var (
		mu      sync.Mutex
		last    = map[string]map[string]int{} // member → key → last seq
		running = map[string]map[string]int{} // member → key → handlers running
		seen    = map[string]int{}
		faults  []string
		total   atomic.Int64
	)
	handler := func(member string) eventstream.EventHandler {
		return func(_ context.Context, e *eventstream.Event) error {
			var seq int
			if err := e.Unmarshal(&seq); err != nil {
				return err
			}
			mu.Lock()
			if last[member] == nil {
				last[member], running[member] = map[string]int{}, map[string]int{}
			}
			running[member][e.Key]++
			if running[member][e.Key] > 1 {
				faults = append(faults, fmt.Sprintf("%s: key %s runs twice at once", member, e.Key))
			}
			if prev, ok := last[member][e.Key]; ok && seq < prev {
				faults = append(faults, fmt.Sprintf("%s: key %s: %d after %d", member, e.Key, seq, prev))
			}
			last[member][e.Key] = seq
			seen[e.ID]++
			mu.Unlock()
			time.Sleep(200 * time.Microsecond)
			mu.Lock()
			running[member][e.Key]--
			mu.Unlock()
			total.Add(1)
			return nil
		}
	}
	join := func(name string, conc int) eventstream.Subscription {
		s, err := b.On("keyed", handler(name), eventstream.WithConsumerGroup("g"), eventstream.WithConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	stable := join("stable", 3)
	_ = stable
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := range perKey {
			for k := range keys {
				if err := b.Emit(context.Background(), "keyed", i, eventstream.WithKey(fmt.Sprintf("k%d", k))); err != nil {
					t.Errorf("Emit: %v", err)
					return
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	for round := 0; ; round++ {
		select {
		case <-emitted:
		default:
			s := join(fmt.Sprintf("m%d", round), 1+round%2*3)
			time.Sleep(5 * time.Millisecond)
			if err := b.Off(s); err != nil {
				t.Fatal(err)
			}
			continue
		}
		break
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(faults) > 0 {
		t.Fatalf("%d faults, first ones: %v", len(faults), faults[:min(len(faults), 5)])
	}
	if total.Load() != keys*perKey || len(seen) != keys*perKey {
		t.Fatalf("%d handled, %d distinct, want %d", total.Load(), len(seen), keys*perKey)
	}
}

// What a leaving member hands over goes before the newer events of its keys
// at the member that takes it over.
func TestHandedOverEventsGoFirst(t *testing.T) {
	cfg := smallConfig(4, 1000)
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b := quietBus(t, cfg)
	gate := make(chan struct{})
	var mu sync.Mutex
	last := map[string]map[string]int{}
	var faults []string
	var handled atomic.Int64
	handler := func(member string) eventstream.EventHandler {
		return func(_ context.Context, e *eventstream.Event) error {
			<-gate
			var seq int
			if err := e.Unmarshal(&seq); err != nil {
				return err
			}
			mu.Lock()
			if last[member] == nil {
				last[member] = map[string]int{}
			}
			if prev, ok := last[member][e.Key]; ok && seq < prev {
				faults = append(faults, fmt.Sprintf("%s: key %s: %d after %d", member, e.Key, seq, prev))
			}
			last[member][e.Key] = seq
			mu.Unlock()
			handled.Add(1)
			return nil
		}
	}
	if _, err := b.On("handover", handler("stays"), eventstream.WithConsumerGroup("g")); err != nil {
		t.Fatal(err)
	}
	leaving, err := b.On("handover", handler("leaves"), eventstream.WithConsumerGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	const keys, perPhase = 20, 5
	emit := func(from int) {
		for k := range keys {
			for i := from; i < from+perPhase; i++ {
				if err := b.Emit(context.Background(), "handover", i, eventstream.WithKey(fmt.Sprintf("k%d", k))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	emit(0)
	offErr := make(chan error, 1)
	go func() { offErr <- b.Off(leaving) }()
	// Off takes the member out of the routes at once: the newer events
	// all go to the member that stays.
	time.Sleep(20 * time.Millisecond)
	emit(perPhase)
	time.Sleep(3 * cfg.ShutdownTimeout)
	close(gate)
	if err := <-offErr; err != nil {
		t.Fatalf("Off: %v", err)
	}
	waitFor(t, "every event", 5*time.Second, func() bool { return handled.Load() == 2*keys*perPhase })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(faults) > 0 {
		t.Fatalf("%d inversions, first ones: %v", len(faults), faults[:min(len(faults), 5)])
	}
}

// The stress test of leaving, beside TestHandlerChainsUnderTinyPools: on
// pools of 1, 2 and 4 workers and lanes of 4 events, members of mixed
// concurrency join a group and leave it — from outside, from their own
// handler, from another subscription's handler — while keyed events flow,
// and the last one leaves while Close runs. Every accepted event is handled
// exactly once per group or counted by Close, a key runs one at a time and
// in emit order within a member, and the goroutines come back to where
// they were.
func TestLeavingUnderTinyPools(t *testing.T) {
	for _, pool := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			stressLeaving(t, pool)
		})
	}
}

func stressLeaving(t *testing.T, pool int) {
	b := quietBus(t, smallConfig(pool, 4))
	const keys, n = 8, 600
	var (
		mu       sync.Mutex
		last     = map[string]map[string]int{} // member → key → last seq
		running  = map[string]map[string]int{} // member → key → handlers running
		seen     = map[string]map[string]int{} // group → event id → times handled
		faults   []string
		handledG atomic.Int64
	)
	record := func(group, member string, e *eventstream.Event) {
		var seq int
		if err := e.Unmarshal(&seq); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		if last[member] == nil {
			last[member], running[member] = map[string]int{}, map[string]int{}
		}
		if seen[group] == nil {
			seen[group] = map[string]int{}
		}
		seen[group][e.ID]++
		if seen[group][e.ID] > 1 {
			faults = append(faults, fmt.Sprintf("group %s handled %s twice", group, e.ID))
		}
		running[member][e.Key]++
		if running[member][e.Key] > 1 {
			faults = append(faults, fmt.Sprintf("%s: key %s runs twice at once", member, e.Key))
		}
		if prev, ok := last[member][e.Key]; ok && seq < prev {
			faults = append(faults, fmt.Sprintf("%s: key %s: %d after %d", member, e.Key, seq, prev))
		}
		last[member][e.Key] = seq
		mu.Unlock()
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		running[member][e.Key]--
		mu.Unlock()
	}
	member := func(name string) eventstream.EventHandler {
		return func(_ context.Context, e *eventstream.Event) error {
			record("g", name, e)
			handledG.Add(1)
			return nil
		}
	}
	join := func(name string, conc int, h eventstream.EventHandler) eventstream.Subscription {
		s, err := b.On("churn", h, eventstream.WithConsumerGroup("g"), eventstream.WithConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	join("stable", 2, member("stable"))
	// A second group sees every event too, with one steady member.
	if _, err := b.On("churn", func(_ context.Context, e *eventstream.Event) error {
		record("h", "h", e)
		return nil
	}, eventstream.WithConsumerGroup("h")); err != nil {
		t.Fatal(err)
	}
	// Off from another subscription's handler: the control topic's
	// handler takes subscriptions off by number.
	var ctlMu sync.Mutex
	toOff := map[int]eventstream.Subscription{}
	offErrs := make(chan error, 1000)
	if _, err := b.On("churn.ctl", func(_ context.Context, e *eventstream.Event) error {
		var id int
		if err := e.Unmarshal(&id); err != nil {
			return err
		}
		ctlMu.Lock()
		s := toOff[id]
		ctlMu.Unlock()
		offErrs <- b.Off(s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := range n / keys {
			for k := range keys {
				if err := b.Emit(context.Background(), "churn", i, eventstream.WithKey(fmt.Sprintf("k%d", k))); err != nil {
					t.Errorf("Emit: %v", err)
					return
				}
			}
		}
	}()
	for round := 0; ; round++ {
		select {
		case <-emitted:
		default:
			name := fmt.Sprintf("m%d", round)
			conc := 1 + round%3
			switch round % 3 {
			case 0: // leaves from outside
				s := join(name, conc, member(name))
				time.Sleep(2 * time.Millisecond)
				offErrs <- b.Off(s)
			case 1: // leaves from its own handler, after a few events
				var s eventstream.Subscription
				joined := make(chan struct{})
				var count atomic.Int64
				h := member(name)
				s = join(name, conc, func(ctx context.Context, e *eventstream.Event) error {
					err := h(ctx, e)
					if count.Add(1) == 3 {
						<-joined
						offErrs <- b.Off(s)
					}
					return err
				})
				close(joined)
				time.Sleep(2 * time.Millisecond)
			case 2: // taken off by another subscription's handler
				s := join(name, conc, member(name))
				ctlMu.Lock()
				toOff[round] = s
				ctlMu.Unlock()
				time.Sleep(time.Millisecond)
				if err := b.Emit(context.Background(), "churn.ctl", round); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		break
	}
	// The last member leaves while Close runs.
	s := join("racer", 2, member("racer"))
	racing := make(chan struct{})
	go func() { defer close(racing); offErrs <- b.Off(s) }()
	closeErr := b.Close()
	<-racing
	unhandled := 0
	if closeErr != nil {
		var se *eventstream.ShutdownError
		if !errors.As(closeErr, &se) {
			t.Fatalf("Close: %v", closeErr)
		}
		unhandled = se.Unhandled
	}
	close(offErrs)
	for err := range offErrs {
		if err != nil && !errors.Is(err, eventstream.ErrClosed) && !errors.Is(err, eventstream.ErrUnknownSubscription) {
			t.Errorf("Off: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(faults) > 0 {
		t.Fatalf("%d faults, first ones: %v", len(faults), faults[:min(len(faults), 5)])
	}
	if got := int(handledG.Load()) + unhandled; got != n || len(seen["g"]) != int(handledG.Load()) {
		t.Fatalf("group g: %d handled + %d counted by Close, want %d", handledG.Load(), unhandled, n)
	}
	if len(seen["h"])+unhandled < n {
		t.Fatalf("group h: %d handled, %d counted by Close, want %d", len(seen["h"]), unhandled, n)
	}
}
