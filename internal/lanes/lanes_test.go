package lanes

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

func newSched(t *testing.T, size int) *Scheduler {
	t.Helper()
	s, err := NewScheduler(size, time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(5 * time.Second) })
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Items of a lane run one at a time, in push order.
func TestLaneOrder(t *testing.T) {
	s := newSched(t, 4)
	var mu sync.Mutex
	var got []int
	var running atomic.Int32
	l := New(s, 1000, func(v int) {
		if running.Add(1) != 1 {
			t.Error("two items of one lane ran at once")
		}
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
		running.Add(-1)
	}, nil)
	for i := range 500 {
		if !l.Push(i) {
			t.Fatal("push refused")
		}
	}
	eventually(t, "all items", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 500 })
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d is %d", i, v)
		}
	}
	if l.Depth() != 0 {
		t.Fatalf("depth %d after draining", l.Depth())
	}
}

// With one worker, a lane that never empties does not starve another.
func TestSchedulerFair(t *testing.T) {
	s := newSched(t, 1)
	stop := make(chan struct{})
	var busy *Lane[int]
	busy = New(s, 1<<20, func(int) {
		select {
		case <-stop:
		default:
			busy.Push(0) // always more work
		}
	}, nil)
	busy.Push(0)
	done := make(chan struct{})
	other := New(s, 10, func(int) { close(done) }, nil)
	time.Sleep(10 * time.Millisecond)
	other.Push(1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a second lane starved behind a busy one on a one-worker pool")
	}
	close(stop)
	eventually(t, "the busy lane to drain", func() bool { return busy.Depth() == 0 })
}

// WaitRoom honours the bound and the context; Stop wakes waiters.
func TestWaitRoomAndStop(t *testing.T) {
	s := newSched(t, 1)
	release := make(chan struct{})
	l := New(s, 1, func(int) { <-release }, nil)
	l.Push(1) // in hand: the lane is full
	eventually(t, "the handler", l.Handling)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.WaitRoom(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRoom on a full lane = %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- l.WaitRoom(context.Background()) }()
	time.Sleep(5 * time.Millisecond)
	l.Stop()
	if err := <-errc; !errors.Is(err, ErrStopped) {
		t.Fatalf("WaitRoom after Stop = %v", err)
	}
	if l.Push(2) {
		t.Fatal("Push after Stop accepted")
	}
	close(release)
	if !l.WaitIdle(5 * time.Second) {
		t.Fatal("lane not idle")
	}
}

// Abandon hands back what never started and leaves the item in hand.
func TestAbandon(t *testing.T) {
	s := newSched(t, 1)
	release := make(chan struct{})
	l := New(s, 10, func(int) { <-release }, nil)
	for i := range 5 {
		l.Push(i)
	}
	eventually(t, "the handler", l.Handling)
	l.Stop()
	rest := l.Abandon()
	if len(rest) != 4 || rest[0] != 1 {
		t.Fatalf("abandoned %v, want [1 2 3 4]", rest)
	}
	if l.Depth() != 1 {
		t.Fatalf("depth %d, want 1 (in hand)", l.Depth())
	}
	close(release)
	if !l.WaitIdle(5*time.Second) || l.Depth() != 0 {
		t.Fatalf("not idle, depth %d", l.Depth())
	}
}

// A handler that ends its goroutine does not wedge the lane: abort gets its
// item, the next items run on a fresh worker.
func TestGoexit(t *testing.T) {
	s := newSched(t, 1)
	var aborted, handled atomic.Int32
	l := New(s, 10, func(v int) {
		if v == 0 {
			runtime.Goexit()
		}
		handled.Add(1)
	}, func(v int) {
		if v != 0 {
			t.Errorf("aborted %d", v)
		}
		aborted.Add(1)
	})
	for i := range 3 {
		l.Push(i)
	}
	eventually(t, "the items after the Goexit", func() bool { return handled.Load() == 2 && aborted.Load() == 1 })
	if l.Depth() != 0 {
		t.Fatalf("depth %d", l.Depth())
	}
}

// InHandler tells a handler's goroutine from others.
func TestInHandler(t *testing.T) {
	s := newSched(t, 1)
	if InHandler() {
		t.Fatal("InHandler true outside a handler")
	}
	got := make(chan bool, 1)
	l := New(s, 1, func(int) { got <- InHandler() }, nil)
	l.Push(1)
	if !<-got {
		t.Fatal("InHandler false inside a handler")
	}
}

// A producer waiting for room is always woken: capacity 1, a fast handler,
// many items; a lost wake-up would hang until the context's deadline.
func TestWaitRoomNoLostWakeup(t *testing.T) {
	s := newSched(t, 2)
	var handled atomic.Int64
	l := New(s, 1, func(int) { handled.Add(1) }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 50000
	for i := range n {
		if err := l.WaitRoom(ctx); err != nil {
			t.Fatalf("item %d: WaitRoom: %v (a wake-up was lost)", i, err)
		}
		l.Push(i)
	}
	eventually(t, "every item", func() bool { return handled.Load() == n })
}

// A lane with a long queue yields within its share, not after its whole
// batch: one worker, a queue of 1000 slow items, and another lane's item
// runs after at most fairShare of them.
func TestFairWithinBatch(t *testing.T) {
	s := newSched(t, 1)
	var slow atomic.Int64
	busy := New(s, 2000, func(int) { slow.Add(1); time.Sleep(50 * time.Microsecond) }, nil)
	for i := range 1000 {
		busy.Push(i)
	}
	eventually(t, "the busy lane to start", func() bool { return slow.Load() > 0 })
	var at atomic.Int64
	done := make(chan struct{})
	other := New(s, 10, func(int) { at.Store(slow.Load()); close(done) }, nil)
	other.Push(1)
	<-done
	if at.Load() > 2*fairShare {
		t.Fatalf("the other lane ran after %d items of the busy one, want at most about %d", at.Load(), fairShare)
	}
	eventually(t, "the busy lane to finish", func() bool { return busy.Depth() == 0 })
}

// CalledFromHandler answers yes only on the goroutine running that lane's
// handler: not outside, not in another lane's handler.
func TestCalledFromHandler(t *testing.T) {
	s := newSched(t, 2)
	var a, b *Lane[int]
	type answer struct{ own, other bool }
	got := make(chan answer, 1)
	bRunning, release := make(chan struct{}), make(chan struct{})
	a = New(s, 1, func(int) {
		<-bRunning
		got <- answer{a.CalledFromHandler(), b.CalledFromHandler()}
	}, nil)
	b = New(s, 1, func(int) { close(bRunning); <-release }, nil)
	if a.CalledFromHandler() {
		t.Fatal("CalledFromHandler true outside a handler")
	}
	b.Push(1)
	a.Push(1)
	ans := <-got
	close(release)
	if !ans.own || ans.other {
		t.Fatalf("in a's handler: a.CalledFromHandler=%v (want true), b.CalledFromHandler=%v (want false)", ans.own, ans.other)
	}
}

// PushFront puts its items before every item that has not started, the
// rest of the worker's batch included.
func TestPushFront(t *testing.T) {
	s := newSched(t, 1)
	var mu sync.Mutex
	var order []int
	first, release := make(chan struct{}), make(chan struct{})
	l := New(s, 100, func(v int) {
		if v == 0 {
			close(first)
			<-release
		}
		mu.Lock()
		order = append(order, v)
		mu.Unlock()
	}, nil)
	for i := range 4 {
		l.Push(i * 10) // 0 in hand; 10, 20, 30 in its batch
	}
	<-first
	l.Push(40)
	if !l.PushFront([]int{1, 2}) {
		t.Fatal("PushFront refused")
	}
	close(release)
	eventually(t, "every item", func() bool { return l.Depth() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != "[0 1 2 10 20 30 40]" {
		t.Fatalf("order %v", order)
	}
	l.Stop()
	if l.PushFront([]int{5}) {
		t.Fatal("PushFront accepted on a stopped lane")
	}
}
