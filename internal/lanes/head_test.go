package lanes

import (
	"sync"
	"testing"
)

// Head is the item in hand while its handler runs, then the next one, and
// nothing once the lane is empty; reading it while the lane runs is safe.
func TestLaneHead(t *testing.T) {
	s := newSched(t, 1)
	release := make(chan struct{})
	started := make(chan int, 10)
	l := New(s, 100, func(v int) {
		started <- v
		<-release
	}, nil)
	if _, ok := l.Head(); ok {
		t.Fatal("empty lane has a head")
	}
	for i := range 3 {
		l.Push(i)
	}
	for want := range 3 {
		if got := <-started; got != want {
			t.Fatalf("started %d, want %d", got, want)
		}
		if h, ok := l.Head(); !ok || h != want {
			t.Fatalf("while %d runs, Head = %d, %v; want the item in hand", want, h, ok)
		}
		release <- struct{}{}
	}
	eventually(t, "empty lane", func() bool { return l.Depth() == 0 })
	eventually(t, "no head", func() bool { _, ok := l.Head(); return !ok })
}

// Head only moves forward while items are pushed and handled (but for the
// moment one item is claimed and its handler not yet started, when it may
// show the next one), and reading it then is safe (the race detector
// watches).
func TestLaneHeadWhileRunning(t *testing.T) {
	s := newSched(t, 2)
	l := New(s, 1<<16, func(int) {}, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 20000 {
			l.Push(i)
		}
		close(stop)
	})
	last := -1
	for running := true; running; {
		select {
		case <-stop:
			running = false
		default:
		}
		h, ok := l.Head()
		if !ok {
			continue
		}
		if h < last-1 {
			t.Fatalf("head went back from %d to %d", last, h)
		}
		last = max(last, h)
	}
	wg.Wait()
	eventually(t, "drained", func() bool { return l.Depth() == 0 })
}
