package lanes

import "time"

// parking is a lane's parked head: an item whose handler said it is not
// done and is due again later (a retry's backoff, a write that must wait).
// The lane keeps its place — nothing behind the item runs — but holds no
// worker while it waits.
type parking[T any] struct {
	// Set by Park on the worker, read by run once the handler returned;
	// only the lane's one worker touches them.
	requested bool
	delay     time.Duration
	again     func(T)
	cut       func(T)

	// Guarded by the lane's mu.
	resume func(T)     // the head of q is parked: run resume(head), not handle
	onCut  func(T)     // called when the parked head leaves without running
	timer  *time.Timer // the wait under way; nil once it fired or ended
	parked bool        // waiting for its timer: no worker, none asked for
}

// Park is called by the lane's handler, on the item in hand, to say that
// the item is not done. When the handler returns, the item stays at the
// head of the lane (nothing behind it runs, so order holds) and the worker
// goes back to the scheduler for other lanes. After d the lane asks for a
// worker again and runs again(item) in place of its handler; again may
// Park in turn. d <= 0 runs again(item) at once, on the same worker.
//
// While the item waits it counts in Depth, Idle stays open and WaitRoom
// sees it, as for any item not done. When the item leaves the lane without
// running again — Abandon ended the wait, or the lane was abandoned while
// its handler ran — cut(item) is called, when cut is not nil: Abandon does
// not return a parked item, cut is the one place that learns of it.
//
// Park may be called only from the lane's handler (or again), for the item
// in hand, at most once per call of it.
func (l *Lane[T]) Park(d time.Duration, again, cut func(T)) {
	p := &l.park
	p.requested, p.delay, p.again, p.cut = true, d, again, cut
}

// parkRequested reports whether the handler that just returned asked to
// park its item.
func (l *Lane[T]) parkRequested() bool { return l.park.requested }

// parkLocked puts item back at the head of the lane, ahead of rest (the
// unclaimed rest of the worker's batch), as its handler asked. It reports
// whether the worker must leave the lane now (it waits), and the cut
// callback to call, outside the lock, when the lane was abandoned
// meanwhile (the item is then no longer counted).
func (l *Lane[T]) parkLocked(item T, rest []T) (leave bool, cut func(T)) {
	p := &l.park
	again, cutFn, d := p.again, p.cut, p.delay
	p.requested, p.again, p.cut = false, nil, nil
	if len(rest) > 0 || len(l.q) > 0 {
		q := make([]T, 0, len(rest)+len(l.q)+1)
		l.q = append(append(q, rest...), l.q...)
	}
	if l.abandon.Load() {
		l.depth.Add(-1)
		if cutFn == nil {
			cutFn = func(T) {}
		}
		return false, cutFn
	}
	l.q = append(l.q, item) // one slot more at the end…
	copy(l.q[1:], l.q)      // …and everything moves up one
	l.q[0] = item
	p.resume, p.onCut = again, cutFn
	if d <= 0 {
		return false, nil
	}
	p.parked = true
	p.timer = time.AfterFunc(d, l.wake)
	return true, nil
}

// takeResumeLocked pops the parked head that is due, with the function to
// run on it; ok is false when the head is an ordinary item.
func (l *Lane[T]) takeResumeLocked() (item T, again func(T), ok bool) {
	p := &l.park
	if p.resume == nil || len(l.q) == 0 {
		return item, nil, false
	}
	item, again = l.q[0], p.resume
	var zero T
	l.q[0] = zero
	l.q = l.q[1:]
	p.resume, p.onCut = nil, nil
	return item, again, true
}

// wake ends a wait: the lane asks for a worker to run its parked head.
func (l *Lane[T]) wake() {
	l.mu.Lock()
	if !l.park.parked {
		l.mu.Unlock()
		return // abandoned meanwhile
	}
	l.park.parked, l.park.timer = false, nil
	l.mu.Unlock()
	l.sched.schedule(l)
}

// unparkLocked is Abandon's part: it takes the parked head, if any, out of
// q, ends its wait, and returns it with its cut callback.
func (l *Lane[T]) unparkLocked() (item T, cut func(T), ok bool) {
	p := &l.park
	if p.resume == nil || len(l.q) == 0 {
		return item, nil, false
	}
	item, cut = l.q[0], p.onCut
	l.q = l.q[1:]
	p.resume, p.onCut = nil, nil
	if p.parked {
		p.parked = false
		p.timer.Stop()
		p.timer = nil
		// No worker owns the lane and none was asked for.
		l.busy = false
		if l.idle != nil {
			close(l.idle)
			l.idle = nil
		}
	}
	return item, cut, true
}
