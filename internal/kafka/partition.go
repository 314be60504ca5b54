package kafka

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/internal/lanes"
)

// partState tracks one assigned partition: the offsets dispatched in order,
// which are done, and so the offset to commit.
//
// A record's handler takes the lock once, when it finishes: starting one
// reads atomics only (revoked and stallAt change a few times in a
// partition's life, and whoever waits for running to reach zero polls).
type partState struct {
	partition int32
	hwm       atomic.Int64 // high watermark from the last fetch; -1 unknown
	committed atomic.Int64 // last committed offset; -1 unknown
	revoked   atomic.Bool
	stallAt   atomic.Int64 // an event at this offset was not done: nothing after it is dispatched or started; -1 none
	running   atomic.Int64 // handlers begun and not ended
	// everParked: a delivery of the partition was parked once, so its
	// records look for held ones before they run (park.go).
	everParked atomic.Bool

	mu       sync.Mutex
	pend     []pendingOffset // dispatched records; pend[head:] are not all done
	head     int
	base     int64 // seq of pend[0]
	next     int64 // seq of the next dispatched record
	mark     int64 // every offset below it is done; -1 unknown
	epoch    int32 // leader epoch of the record before mark
	markTS   int64 // timestamp (unix ns) of the record before mark; 0 unknown
	dispHigh int64 // offset after the last dispatched record; -1 none
	parked   int   // deliveries parked (park.go)

	// The context of its handlers, and its cancel (leave.go); nil for a
	// state made outside a consumer.
	ctx    context.Context
	cancel context.CancelFunc
	hold   hold // records held aside behind them, per lane
}

type pendingOffset struct {
	offset int64
	ts     int64 // the record's timestamp, unix ns; 0 unknown
	epoch  int32
	done   bool
}

func newPartState(p int32) *partState {
	ps := &partState{partition: p, mark: -1, epoch: -1, dispHigh: -1}
	ps.hwm.Store(-1)
	ps.committed.Store(-1)
	ps.stallAt.Store(-1)
	return ps
}

func (ps *partState) isRevoked() bool { return ps.revoked.Load() }

func (ps *partState) revoke() { ps.revoked.Store(true) }

// setStart records where consuming starts, when nothing was dispatched yet.
func (ps *partState) setStart(off int64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.pend) == ps.head && ps.mark < 0 {
		ps.mark = off
	}
}

// track registers the dispatched records recs, in offset order, under one
// lock, and returns the sequence number of the first (the others follow
// it); false when the partition takes no more records.
func (ps *partState) track(recs []*kgo.Record) (int64, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.revoked.Load() || ps.stallAt.Load() >= 0 {
		return 0, false
	}
	if len(ps.pend) == ps.head { // all done: start over
		ps.pend, ps.head, ps.base = ps.pend[:0], 0, ps.next
	}
	for _, r := range recs {
		ps.pend = append(ps.pend, pendingOffset{offset: r.Offset, ts: unixNano(r.Timestamp), epoch: -1})
	}
	if len(recs) > 0 {
		ps.dispHigh = recs[len(recs)-1].Offset + 1
	}
	first := ps.next
	ps.next += int64(len(recs))
	return first, true
}

// begin marks the handler of offset off starting; false when the
// partition was revoked, or stalled before off. It counts itself running
// before it looks, so that a revoke either stops it here or waits for it
// (waitIdle): both sides write, then read the other's atomic.
func (ps *partState) begin(off int64) bool {
	ps.running.Add(1)
	if stall := ps.stallAt.Load(); ps.revoked.Load() || stall >= 0 && off > stall {
		ps.running.Add(-1)
		return false
	}
	return true
}

// finish marks seq done and moves the mark past every done prefix.
func (ps *partState) finish(seq, off int64, epoch int32) {
	defer ps.running.Add(-1) // after the mark moved: waitIdle's caller commits it
	ps.mu.Lock()
	defer ps.mu.Unlock()
	i := seq - ps.base
	if i < int64(ps.head) || i >= int64(len(ps.pend)) || ps.pend[i].offset != off {
		return
	}
	ps.pend[i].done, ps.pend[i].epoch = true, epoch
	h := ps.head
	for h < len(ps.pend) && ps.pend[h].done {
		h++
	}
	if h == ps.head {
		return
	}
	last := ps.pend[h-1]
	ps.mark, ps.epoch, ps.markTS = last.offset+1, last.epoch, last.ts
	ps.head = h
	// Drop the done prefix once it is most of the slice: amortized O(1)
	// per record however far apart lanes finish.
	if h > 256 && h > len(ps.pend)/2 {
		n := copy(ps.pend, ps.pend[h:])
		ps.pend, ps.head, ps.base = ps.pend[:n], 0, ps.base+int64(h)
	}
}

// stall ends the handler of offset off, whose event is not done: the mark
// stays below it, and the partition dispatches nothing more and starts
// nothing after it (what came before may still finish), so no later commit
// can pass the event.
func (ps *partState) stall(off int64) {
	defer ps.running.Add(-1)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if cur := ps.stallAt.Load(); cur < 0 || off < cur {
		ps.stallAt.Store(off)
	}
}

// pause ends the handler of a record that is not done yet but will run
// again (its retry waits): unlike stall, the partition goes on; its mark
// stays below the record until a later begin and finish.
func (ps *partState) pause() { ps.running.Add(-1) }

// waitIdle waits until no handler of the partition runs, up to d. It
// polls: it runs once per revoked partition, and a notification would
// cost every record.
func (ps *partState) waitIdle(d time.Duration) {
	if ps.running.Load() == 0 || d <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lanes.PollUntil(ctx, time.Millisecond, func() int { return int(ps.running.Load()) })
}

// oldest returns the timestamp (unix ns) of the partition's oldest record
// that is not done: the record at the mark, the offset the next commit
// carries. When that record was not fetched yet (the end moved since the
// last fetch), it is estimated by the timestamp of the last record done,
// which is no later than its own: the age reads high rather than low, never
// above the truth by more than the gap between the two records. 0 when the
// partition is caught up (the mark at the end of the last fetch) or nothing
// is known yet (taken over, nothing fetched nor done here).
func (ps *partState) oldest() int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.head < len(ps.pend) {
		return ps.pend[ps.head].ts
	}
	if hwm := ps.hwm.Load(); ps.mark >= 0 && hwm > ps.mark {
		return ps.markTS
	}
	return 0
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// toCommit returns the offset to commit, if it moved past the last commit.
func (ps *partState) toCommit() (kgo.EpochOffset, bool) {
	ps.mu.Lock()
	mark, epoch := ps.mark, ps.epoch
	ps.mu.Unlock()
	if mark < 0 || mark <= ps.committed.Load() {
		return kgo.EpochOffset{}, false
	}
	return kgo.EpochOffset{Epoch: epoch, Offset: mark}, true
}

func (ps *partState) markOffset() int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.mark
}

// dispatchedEnd is the offset after the last dispatched record (the mark
// when nothing was dispatched).
func (ps *partState) dispatchedEnd() int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.dispHigh >= 0 {
		return ps.dispHigh
	}
	return ps.mark
}
