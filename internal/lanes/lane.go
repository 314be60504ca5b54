package lanes

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStopped: the lane was stopped (its subscription left, or the bus is
// closing) and takes no more items.
var ErrStopped = errors.New("lane stopped")

// Lane is a bounded FIFO of items handled in order by at most one worker at
// a time. Its capacity bounds queued plus in-hand items; WaitRoom is how a
// producer honours it, Push never refuses for lack of room (items already
// accepted elsewhere, dead letters and events emitted from handlers must
// never wait for a worker that only the waiting goroutine could free).
type Lane[T any] struct {
	sched    *Scheduler
	handle   func(T)
	abort    func(T) // the handler ended its goroutine while holding the item
	capacity int64

	depth    atomic.Int64 // queued plus in hand: the bound and the gauge
	waiters  atomic.Int32
	abandon  atomic.Bool    // the worker leaves the rest of the queue alone
	handlerG atomic.Uintptr // the goroutine running a handler (curg); 0 when none

	pos atomic.Int64 // next item of batch to claim

	mu      sync.Mutex
	q       []T
	spare   []T
	batch   []T           // the worker's batch; guarded by mu, its items claimed through pos
	busy    bool          // a worker owns the lane, or one was asked for, or the head is parked
	stopped bool          // Push refuses
	room    chan struct{} // closed when room frees up; nil without waiters
	idle    chan struct{} // closed when the worker leaves; nil without waiters

	park parking[T] // the head item waiting to run again (park.go)
}

// New returns a lane of the given capacity (at least 1) whose items handle
// runs. abort, when not nil, is called with an item whose handler ended its
// goroutine (runtime.Goexit, as t.FailNow does) instead of returning.
func New[T any](s *Scheduler, capacity int, handle, abort func(T)) *Lane[T] {
	return &Lane[T]{sched: s, handle: handle, abort: abort, capacity: int64(max(capacity, 1))}
}

// Depth is the number of items queued or in hand.
func (l *Lane[T]) Depth() int64 { return l.depth.Load() }

// Handling reports whether a handler of the lane is running.
func (l *Lane[T]) Handling() bool { return l.handlerG.Load() != 0 }

// CalledFromHandler reports whether the calling goroutine is the one
// running the lane's handler: a subscription that leaves from one of its
// own handlers must not wait for that handler.
func (l *Lane[T]) CalledFromHandler() bool { return l.handlerG.Load() == curg() }

// Head returns the oldest item accepted and not yet handled: the one in
// hand, else the next to start; false when the lane is empty. It takes the
// lock once and costs the hot path nothing, so a gauge may call it at every
// collection. Just as one handler ends and the next starts, it may return
// either of the two.
func (l *Lane[T]) Head() (item T, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := int64(len(l.batch)); n > 0 {
		p := l.pos.Load() // claimed so far; beyond n once the rest was taken back
		if p >= 1 && p <= n && l.handlerG.Load() != 0 {
			return l.batch[p-1], true
		}
		if p >= 0 && p < n {
			return l.batch[p], true
		}
	}
	if len(l.q) > 0 {
		return l.q[0], true
	}
	return item, false
}

// WaitRoom blocks while the lane is full, until ctx is done (ctx's error) or
// the lane is stopped (ErrStopped).
func (l *Lane[T]) WaitRoom(ctx context.Context) error {
	for l.depth.Load() >= l.capacity {
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			return ErrStopped
		}
		// Count as a waiter before looking at the depth again: a worker
		// that frees room after this look sees the waiter and wakes it.
		l.waiters.Add(1)
		if l.depth.Load() < l.capacity {
			l.waiters.Add(-1)
			l.mu.Unlock()
			return nil
		}
		if l.room == nil {
			l.room = make(chan struct{})
		}
		room := l.room
		l.mu.Unlock()
		select {
		case <-room:
			l.waiters.Add(-1)
		case <-ctx.Done():
			l.waiters.Add(-1)
			return ctx.Err()
		}
	}
	return nil
}

// Push appends item, whatever the room; false when the lane is stopped.
// Concurrent producers that waited for room may overshoot the capacity by
// at most their number.
func (l *Lane[T]) Push(item T) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.depth.Add(1)
	l.q = append(l.q, item)
	start := !l.busy
	l.busy = true
	l.mu.Unlock()
	if start {
		l.sched.schedule(l)
	}
	return true
}

// PushFront puts items, in order, before every item of the lane that has
// not started, whatever the room: events handed over by a member that left
// go before newer events of their keys. False when the lane is stopped.
func (l *Lane[T]) PushFront(items []T) bool {
	if len(items) == 0 {
		return true
	}
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.depth.Add(int64(len(items)))
	// The unclaimed rest of the worker's batch comes back to the queue,
	// behind items, and the worker stops claiming from the batch.
	rest := l.unclaimedLocked()
	q := make([]T, 0, len(items)+len(rest)+len(l.q))
	if l.park.resume != nil && len(l.q) > 0 {
		// A parked head has started: it stays first.
		q = append(q, l.q[0])
		l.q = l.q[1:]
	}
	l.q = append(append(append(q, items...), rest...), l.q...)
	start := !l.busy
	l.busy = true
	l.mu.Unlock()
	if start {
		l.sched.schedule(l)
	}
	return true
}

// run implements runner. The worker takes the queue as a batch (one lock
// per batch, not per item) and claims its items one by one through pos, so
// that Abandon can take back the unclaimed rest of the batch at any moment.
func (l *Lane[T]) run(budget int) (more bool) {
	handled := 0
	var item T
	inHand := false
	defer func() {
		if !inHand {
			return
		}
		// The handler ended the goroutine: the item in hand counts as
		// done (its owner is told), the rest of the batch goes back to the
		// queue and the scheduler hands the lane to a fresh worker.
		l.handlerG.Store(0)
		l.mu.Lock()
		rest := l.unclaimedLocked()
		l.batch = nil
		if len(rest) > 0 {
			l.q = append(rest, l.q...)
		}
		l.mu.Unlock()
		l.depth.Add(-1)
		l.wakeWaiters()
		if l.abort != nil {
			l.abort(item)
		}
	}()
	var zero T
	g := curg()
	for handled < budget {
		l.mu.Lock()
		if len(l.q) == 0 || l.abandon.Load() {
			l.busy = false
			if l.idle != nil {
				close(l.idle)
				l.idle = nil
			}
			l.mu.Unlock()
			return false
		}
		if head, again, ok := l.takeResumeLocked(); ok {
			l.mu.Unlock()
			item, inHand = head, true
			l.handlerG.Store(g)
			again(item)
			item, inHand = zero, false
			if l.parkRequested() {
				l.mu.Lock()
				leave, cut := l.parkLocked(head, nil)
				l.mu.Unlock()
				if cut != nil {
					cut(head) // while Handling, so that a leaving owner waits for it
				}
				l.handlerG.Store(0)
				if leave {
					return false
				}
			} else {
				l.handlerG.Store(0)
				l.depth.Add(-1)
				l.wakeWaiters()
			}
			handled++
			continue
		}
		batch := l.q
		l.q, l.spare = l.spare[:0], nil
		l.batch = batch
		l.pos.Store(0)
		l.mu.Unlock()

		for {
			i := l.pos.Add(1) - 1
			if i >= int64(len(batch)) {
				break
			}
			item, inHand = batch[i], true
			l.handlerG.Store(g)
			l.handle(item)
			if l.parkRequested() {
				// Not done: the item goes back to the head of the
				// queue, the rest of the batch behind it.
				l.mu.Lock()
				leave, cut := l.parkLocked(item, l.unclaimedLocked())
				l.batch = nil
				clear(batch)
				l.mu.Unlock()
				parked := item
				item, inHand = zero, false
				if cut != nil {
					cut(parked) // while Handling, so that a leaving owner waits for it
				}
				l.handlerG.Store(0)
				if leave {
					return false
				}
				handled++
				break
			}
			l.handlerG.Store(0)
			// batch[i] is left as it is: Head reads the batch under the
			// lock, and the whole batch is cleared under it.
			item, inHand = zero, false
			l.depth.Add(-1)
			l.wakeWaiters()
			handled++
			if handled >= budget && l.sched.waiting.Load() > 0 {
				// Had its share and others wait: the rest of the batch
				// goes back to the queue, the lane behind them.
				l.mu.Lock()
				if rest := l.unclaimedLocked(); len(rest) > 0 {
					l.q = append(rest, l.q...)
				}
				l.batch = nil
				l.mu.Unlock()
				clear(batch)
				return true
			}
		}
		l.mu.Lock()
		l.batch = nil
		clear(batch)
		l.spare = batch[:0]
		l.mu.Unlock()
	}
	return true
}

// unclaimedLocked returns a copy of the items of the worker's batch that no
// handler has started, and stops the worker from claiming more.
func (l *Lane[T]) unclaimedLocked() []T {
	claimed := l.pos.Swap(math.MaxInt64 / 2)
	if l.batch == nil || claimed >= int64(len(l.batch)) {
		return nil
	}
	return append([]T(nil), l.batch[claimed:]...)
}

func (l *Lane[T]) wakeWaiters() {
	if l.waiters.Load() == 0 {
		return
	}
	l.mu.Lock()
	if l.room != nil {
		close(l.room)
		l.room = nil
	}
	l.mu.Unlock()
}

// Stop refuses further pushes and wakes producers waiting for room (they get
// ErrStopped). It does not wait; see Idle, WaitIdle and Abandon.
func (l *Lane[T]) Stop() {
	l.mu.Lock()
	l.stopped = true
	if l.room != nil {
		close(l.room)
		l.room = nil
	}
	l.mu.Unlock()
}

// Idle returns a channel closed once no worker owns the lane and no item
// is parked.
func (l *Lane[T]) Idle() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.busy {
		return closedChan
	}
	if l.idle == nil {
		l.idle = make(chan struct{})
	}
	return l.idle
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Abandon makes the worker leave the queue after the item in hand and
// returns the items that never started, in order; they are no longer
// counted. A parked item's wait ends and its cut callback gets it (see
// Park).
func (l *Lane[T]) Abandon() []T {
	l.abandon.Store(true)
	l.mu.Lock()
	parked, cut, wasParked := l.unparkLocked()
	rest := append(l.unclaimedLocked(), l.q...)
	l.q = nil
	l.mu.Unlock()
	l.depth.Add(-int64(len(rest)))
	if wasParked {
		l.depth.Add(-1)
		if cut != nil {
			cut(parked)
		}
	}
	return rest
}

// WaitIdle waits until no worker owns the lane, up to d.
func (l *Lane[T]) WaitIdle(d time.Duration) bool {
	return WaitClosed(l.Idle(), d)
}

// WaitClosed waits until ch is closed, up to d, and reports whether it was.
func WaitClosed(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// InHandler reports whether the calling goroutine is running the handler
// of some lane (of any scheduler): Off called from a handler must not wait
// for a queue that only the worker it holds could run. Which lane, if it
// matters, CalledFromHandler tells. It walks the caller's stack, so it is
// for rare calls.
func InHandler() bool {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, laneRunPrefix) && strings.HasSuffix(f.Function, ").run") {
			return true
		}
		if !more {
			return false
		}
	}
}

const laneRunPrefix = "libx.net/eventstream/internal/lanes.(*Lane["

// PollUntil calls pending every interval until it reports zero or ctx is
// done, and returns the last figure. Draining at Close is rare enough that
// polling beats a notification on every item.
func PollUntil(ctx context.Context, every time.Duration, pending func() int) int {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n := pending()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return pending()
		case <-tick.C:
		}
	}
}
