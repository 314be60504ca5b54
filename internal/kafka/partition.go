package kafka

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/internal/lanes"
)

// partState tracks one assigned partition: the offsets dispatched in order,
// which are done, and so the offset to commit.
type partState struct {
	partition int32
	hwm       atomic.Int64 // high watermark from the last fetch; -1 unknown
	committed atomic.Int64 // last committed offset; -1 unknown

	mu       sync.Mutex
	revoked  bool
	stallAt  int64 // an event at this offset was not done: nothing after it is dispatched or started; -1 none
	running  int
	idle     chan struct{}
	pend     []pendingOffset // dispatched records; pend[head:] are not all done
	head     int
	base     int64 // seq of pend[0]
	next     int64 // seq of the next dispatched record
	mark     int64 // every offset below it is done; -1 unknown
	epoch    int32 // leader epoch of the record before mark
	dispHigh int64 // offset after the last dispatched record; -1 none
}

type pendingOffset struct {
	offset int64
	epoch  int32
	done   bool
}

func newPartState(p int32) *partState {
	ps := &partState{partition: p, mark: -1, epoch: -1, dispHigh: -1, stallAt: -1}
	ps.hwm.Store(-1)
	ps.committed.Store(-1)
	return ps
}

func (ps *partState) isRevoked() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.revoked
}

func (ps *partState) revoke() {
	ps.mu.Lock()
	ps.revoked = true
	ps.mu.Unlock()
}

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
	if ps.revoked || ps.stallAt >= 0 {
		return 0, false
	}
	if len(ps.pend) == ps.head { // all done: start over
		ps.pend, ps.head, ps.base = ps.pend[:0], 0, ps.next
	}
	for _, r := range recs {
		ps.pend = append(ps.pend, pendingOffset{offset: r.Offset, epoch: -1})
	}
	if len(recs) > 0 {
		ps.dispHigh = recs[len(recs)-1].Offset + 1
	}
	first := ps.next
	ps.next += int64(len(recs))
	return first, true
}

// begin marks the handler of offset off starting; false when the
// partition was revoked, or stalled before off.
func (ps *partState) begin(off int64) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.revoked || ps.stallAt >= 0 && off > ps.stallAt {
		return false
	}
	ps.running++
	return true
}

// finish marks seq done and moves the mark past every done prefix.
func (ps *partState) finish(seq, off int64, epoch int32) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.ended()
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
	ps.mark, ps.epoch = last.offset+1, last.epoch
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
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.ended()
	if ps.stallAt < 0 || off < ps.stallAt {
		ps.stallAt = off
	}
}

// ended counts a handler out; ps.mu is held.
func (ps *partState) ended() {
	ps.running--
	if ps.running == 0 && ps.idle != nil {
		close(ps.idle)
		ps.idle = nil
	}
}

// waitIdle waits until no handler of the partition runs, up to d.
func (ps *partState) waitIdle(d time.Duration) {
	ps.mu.Lock()
	if ps.running == 0 {
		ps.mu.Unlock()
		return
	}
	if ps.idle == nil {
		ps.idle = make(chan struct{})
	}
	idle := ps.idle
	ps.mu.Unlock()
	lanes.WaitClosed(idle, d)
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
