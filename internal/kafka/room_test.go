package kafka

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newRoom(limit int64) *room { return &room{limit: limit, freed: make(chan struct{}, 1)} }

// Room up to the limit is taken at once; beyond it, take waits until the
// context is done, or until room is freed.
func TestRoomBound(t *testing.T) {
	r := newRoom(2)
	ctx := context.Background()
	for range 2 {
		if err := r.take(ctx); err != nil {
			t.Fatal("room below the limit refused:", err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := r.take(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("take beyond the limit: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- r.take(ctx) }()
	time.Sleep(10 * time.Millisecond)
	r.free()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter was not woken by free")
	}
	if n := r.used.Load(); n != 2 {
		t.Fatalf("used %d", n)
	}
}

// Many publishers and freers: never more than the limit in use, and no
// waiter is left behind (a lost wake-up would hang the test).
func TestRoomNoLostWakeup(t *testing.T) {
	for _, limit := range []int64{1, 3} {
		r := newRoom(limit)
		var inUse, peak atomic.Int64
		held := make(chan struct{}, 1000)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 2000 {
					if err := r.take(context.Background()); err != nil {
						t.Error(err)
						return
					}
					n := inUse.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					held <- struct{}{}
				}
			})
		}
		freer := make(chan struct{})
		go func() {
			defer close(freer)
			for range 8 * 2000 {
				<-held
				inUse.Add(-1)
				r.free()
			}
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); <-freer; close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("limit %d: stuck with %d in use", limit, r.used.Load())
		}
		if p := peak.Load(); p > limit {
			t.Fatalf("limit %d: %d in use at once", limit, p)
		}
		if n := r.used.Load(); n != 0 {
			t.Fatalf("limit %d: %d left in use", limit, n)
		}
	}
}
