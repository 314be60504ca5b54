package kafka

import (
	"context"
	"errors"
	"sync"
	"time"

	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
)

// A delivery the bus reports as pending (a dead letter that could not be
// written yet) is parked: its record stays unfinished, so no commit passes
// it, and a goroutine of its own, not a worker, retries it after each
// delay. Only what must stay behind it waits: the later records of its
// partition in its lane, which handle holds aside, in order, and the
// partition's fetching, which is paused. The lane, shared with other
// partitions (and other keys, with concurrency), goes on. Once the event
// is done its held records go back to their lane, ahead of any of the
// partition's records that reached the lane since.

var _ transport.Parker = (*Transport)(nil)

// ParksPending implements transport.Parker.
func (*Transport) ParksPending() {}

// parking is a consumer's parked deliveries.
type parking struct {
	ctx    context.Context // ends when the member gives up on them
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	n      int  // parked, not yet done or given up
	closed bool // given up: nothing more is parked
}

// hold is one partition's held records, per lane (under partState.mu).
type hold struct {
	blocked map[*lanes.Lane[item]]int    // lane → parked deliveries
	held    map[*lanes.Lane[item]][]item // lane → records held aside, in order
	replay  map[*lanes.Lane[item]]int    // lane → held records pushed back, not yet handled
}

// holdAside decides whether it waits instead of running: its lane of its
// partition has a parked delivery, or held records on their way back that
// must run first. It returns true when it took the record.
func (c *consumer) holdAside(it item) bool {
	ps := it.ps
	if !ps.everParked.Load() {
		return false // the common case: one atomic load per record
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	h := &ps.hold
	if it.replayed {
		h.replay[it.lane]--
	}
	switch {
	case h.blocked[it.lane] > 0:
		it.replayed = false
		h.held[it.lane] = append(h.held[it.lane], it)
		return true
	case !it.replayed && h.replay[it.lane] > 0:
		// Held records are on their way back to the lane: this one,
		// later on the partition, goes behind them.
		it.replayed = true
		if it.lane.Push(it) {
			h.replay[it.lane]++
		}
		return true
	}
	return false
}

// parkPending sets aside the delivery of it, which the bus reports pending.
func (c *consumer) parkPending(it item, p *transport.Pending) {
	ps := it.ps
	ps.mu.Lock()
	if ps.hold.blocked == nil {
		ps.hold = hold{blocked: map[*lanes.Lane[item]]int{}, held: map[*lanes.Lane[item]][]item{}, replay: map[*lanes.Lane[item]]int{}}
	}
	ps.hold.blocked[it.lane]++
	ps.everParked.Store(true) // under mu: holdAside then takes it to look
	first := ps.parked == 0
	ps.parked++
	ps.mu.Unlock()
	if first {
		// Records not polled yet are fetched again once resumed.
		c.cl.Load().PauseFetchPartitions(map[string][]int32{c.sub.Topic: {ps.partition}})
	}
	c.parking.mu.Lock()
	defer c.parking.mu.Unlock()
	c.parking.n++
	if c.parking.closed {
		// The member gave up on parked deliveries already: this one too.
		go c.retryParked(it, p) // returns at once: the context is done
		return
	}
	c.parking.wg.Go(func() { c.retryParked(it, p) })
}

// retryParked calls p.Retry after each delay until the delivery is done or
// given up (the member leaves, the partition is revoked).
func (c *consumer) retryParked(it item, p *transport.Pending) {
	ctx := c.parking.ctx
	delay := p.Delay
	for {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
		if ctx.Err() != nil || it.ps.isRevoked() {
			gone, cancel := context.WithCancel(ctx)
			cancel()
			_, _ = p.Retry(gone)
			c.unparkPending(it, false)
			return
		}
		again, err := p.Retry(ctx)
		switch {
		case err == nil && again <= 0:
			c.unparkPending(it, true)
			return
		case err != nil:
			if !errors.Is(err, context.Canceled) {
				c.t.host.Logger.Warn("eventstream: a parked delivery was given up; it stays uncommitted for the group's next member",
					"topic", c.sub.Topic, "group", c.sub.Group, "partition", it.ps.partition, "offset", it.rec.Offset, "error", err)
			}
			c.unparkPending(it, false)
			return
		}
		delay = again
	}
}

// unpark ends a parked delivery: done, its offset is finished and the
// records held behind it go back to their lane; not done, the partition
// stops there (nothing after it is handled or committed).
func (c *consumer) unparkPending(it item, done bool) {
	ps := it.ps
	if done {
		ps.finish(it.seq, it.rec.Offset, it.rec.LeaderEpoch)
	} else {
		ps.stall(it.rec.Offset)
	}
	ps.mu.Lock()
	h := &ps.hold
	h.blocked[it.lane]--
	ps.parked--
	resume := ps.parked == 0
	if done && h.blocked[it.lane] == 0 {
		for _, r := range h.held[it.lane] {
			r.replayed = true
			if it.lane.Push(r) {
				h.replay[it.lane]++
			}
		}
		delete(h.held, it.lane)
	}
	ps.mu.Unlock()
	if resume {
		// Also when given up or revoked: a pause outlives assignments.
		c.cl.Load().ResumeFetchPartitions(map[string][]int32{c.sub.Topic: {ps.partition}})
	}
	c.parking.mu.Lock()
	c.parking.n--
	c.parking.mu.Unlock()
}

// parkedCount is the deliveries parked and not yet done or given up.
func (c *consumer) parkedCount() int {
	c.parking.mu.Lock()
	defer c.parking.mu.Unlock()
	return c.parking.n
}

// waitParked lets parked deliveries finish, up to d.
func (c *consumer) waitParked(d time.Duration) {
	if c.parkedCount() == 0 || d <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(c.t.ctx, d)
	defer cancel()
	lanes.PollUntil(ctx, 5*time.Millisecond, c.parkedCount)
}

// giveUpParked ends every parked delivery, not done, and returns how many
// there were: their events stay uncommitted, for the group's next member.
func (c *consumer) giveUpParked() int {
	c.parking.mu.Lock()
	n := c.parking.n
	c.parking.closed = true
	c.parking.mu.Unlock()
	c.parking.cancel()
	c.parking.wg.Wait()
	return n
}
