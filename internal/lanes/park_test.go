package lanes

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func (s *Scheduler) activeWorkers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// A parked item keeps its lane (nothing behind it runs) but not its worker:
// with one worker, another lane runs while it waits, and it runs again once
// its delay is over, before the items behind it.
func TestParkFreesWorkerKeepsOrder(t *testing.T) {
	s := newSched(t, 1)
	var mu sync.Mutex
	var got []string
	record := func(v string) { mu.Lock(); got = append(got, v); mu.Unlock() }
	var a *Lane[int]
	parkedAt := make(chan time.Time, 1)
	a = New(s, 10, func(v int) {
		if v == 0 {
			parkedAt <- time.Now()
			a.Park(300*time.Millisecond, func(v int) { record("a0-again") }, nil)
			return
		}
		record("a" + string(rune('0'+v)))
	}, nil)
	b := New(s, 10, func(int) { record("b") }, nil)

	a.Push(0)
	a.Push(1)
	a.Push(2)
	start := <-parkedAt
	eventually(t, "the worker back in the pool", func() bool { return s.activeWorkers() == 0 })
	if a.Depth() != 3 {
		t.Fatalf("parked lane depth %d, want 3 (the parked item and two behind it)", a.Depth())
	}
	select {
	case <-a.Idle():
		t.Fatal("a lane with a parked item reports idle")
	default:
	}
	b.Push(0)
	eventually(t, "the other lane", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	if waited := time.Since(start); waited >= 300*time.Millisecond {
		t.Fatalf("the other lane ran after %v, not during the wait", waited)
	}
	if !a.WaitIdle(5 * time.Second) {
		t.Fatal("the parked lane never finished")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"b", "a0-again", "a1", "a2"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if a.Depth() != 0 {
		t.Fatalf("depth %d after the lane drained", a.Depth())
	}
}

// An item parks again and again (a retry after a retry), and a zero delay
// runs it again at once.
func TestParkRepeatedly(t *testing.T) {
	s := newSched(t, 1)
	var runs atomic.Int32
	var l *Lane[int]
	var again func(int)
	again = func(int) {
		switch n := runs.Add(1); {
		case n < 3:
			l.Park(time.Duration(n)*10*time.Millisecond, again, nil)
		case n < 5:
			l.Park(0, again, nil)
		}
	}
	l = New(s, 10, func(int) { l.Park(time.Millisecond, again, nil) }, nil)
	l.Push(0)
	if !l.WaitIdle(5*time.Second) || runs.Load() != 5 || l.Depth() != 0 {
		t.Fatalf("runs %d, depth %d", runs.Load(), l.Depth())
	}
}

// Abandon ends a wait: cut gets the parked item, Abandon returns only the
// items that never started, the lane is idle and never runs the item again.
func TestParkAbandon(t *testing.T) {
	s := newSched(t, 1)
	var ran atomic.Bool
	var cut []int
	var l *Lane[int]
	l = New(s, 10, func(v int) {
		if v == 0 {
			l.Park(100*time.Millisecond, func(int) { ran.Store(true) }, func(v int) { cut = append(cut, v) })
		}
	}, nil)
	for i := range 3 {
		l.Push(i)
	}
	eventually(t, "the park", func() bool { return s.activeWorkers() == 0 })
	l.Stop()
	rest := l.Abandon()
	if len(rest) != 2 || rest[0] != 1 || len(cut) != 1 || cut[0] != 0 {
		t.Fatalf("abandoned %v, cut %v; want [1 2] and [0]", rest, cut)
	}
	if !l.WaitIdle(time.Second) || l.Depth() != 0 {
		t.Fatalf("not idle after Abandon, depth %d", l.Depth())
	}
	time.Sleep(200 * time.Millisecond)
	if ran.Load() {
		t.Fatal("an abandoned parked item ran again")
	}
}

// A handler that parks its item after the lane was abandoned hands the
// item to cut at once.
func TestParkAfterAbandon(t *testing.T) {
	s := newSched(t, 1)
	release := make(chan struct{})
	cut := make(chan int, 1)
	var l *Lane[int]
	l = New(s, 10, func(v int) {
		<-release
		l.Park(time.Hour, func(int) { t.Error("ran again") }, func(v int) { cut <- v })
	}, nil)
	l.Push(7)
	eventually(t, "the handler", l.Handling)
	l.Stop()
	if rest := l.Abandon(); len(rest) != 0 {
		t.Fatalf("abandoned %v", rest)
	}
	close(release)
	select {
	case v := <-cut:
		if v != 7 {
			t.Fatalf("cut %d", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cut not called")
	}
	if !l.WaitIdle(time.Second) || l.Depth() != 0 {
		t.Fatalf("not idle, depth %d", l.Depth())
	}
}
