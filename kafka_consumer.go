//go:build kafkamove

// Excluded while the Kafka transport moves to internal/kafka; this file is deleted when it lands.

package eventstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kconsumer is one subscription's member of its consumer group.
//
// A poll goroutine hands records, in offset order, to the subscription's
// lanes: one lane per unit of concurrency, chosen by key (keyless records
// round robin), each drained by at most one pooled worker, so a key's
// records run one at a time, in order. Each partition tracks which of its
// dispatched offsets have finished; the committed offset is the first one
// that has not, so nothing is committed before its handler (or dead letter)
// is done, even when lanes finish out of order. Commits happen every
// CommitInterval, on every rebalance, on Off and on Close.
type kconsumer struct {
	t       *kafkaTransport
	s       *subscription
	private bool
	cl      atomic.Pointer[kgo.Client]
	lanes   []*klane
	rr      atomic.Uint64

	pollCtx    context.Context
	stopPoll   context.CancelFunc
	pollDone   chan struct{}
	stopCommit chan struct{}
	commitDone chan struct{}

	ready     chan struct{} // closed once On may return
	readyOnce sync.Once
	joinErr   chan error // a group error that retrying will not fix, before ready

	mu        sync.Mutex
	parts     map[int32]*partState
	drainEnds map[int32]int64 // set by Close: dispatch no further

	abandon   atomic.Bool // workers skip what has not started
	shutOnce  sync.Once
	commitMu  sync.Mutex
	warnEvery time.Time // rate limit of fetch error logs, guarded by mu
}

// maxPollRecords bounds one poll; the lanes bound what waits beyond it.
const maxPollRecords = 1024

func newConsumer(t *kafkaTransport, s *subscription, private bool) (*kconsumer, error) {
	c := &kconsumer{
		t: t, s: s, private: private,
		pollDone:   make(chan struct{}),
		stopCommit: make(chan struct{}),
		commitDone: make(chan struct{}),
		ready:      make(chan struct{}),
		joinErr:    make(chan error, 1),
		parts:      map[int32]*partState{},
	}
	c.pollCtx, c.stopPoll = context.WithCancel(context.Background())
	capacity := t.bus.cfg.Memory.BufferSize
	c.lanes = make([]*klane, s.concurrency)
	for i := range c.lanes {
		c.lanes[i] = &klane{c: c, capacity: capacity}
	}
	kc := t.cfg
	opts := append([]kgo.Opt(nil), t.base...)
	opts = append(opts,
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(s.topic),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.AdjustFetchOffsetsFn(c.adjustOffsets),
		// Partitions without a commit that adjustOffsets could not
		// resolve start at the beginning: duplicates, never a gap.
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(kc.SessionTimeout),
		kgo.HeartbeatInterval(kc.HeartbeatInterval),
		kgo.FetchMaxWait(kc.FetchMaxWait),
	)
	opts = append(opts, kc.ConsumerOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, &ConfigError{Field: "Kafka.ConsumerOptions", Reason: err.Error()}
	}
	c.cl.Store(cl)
	go c.poll(cl)
	go c.commitLoop()
	return c, nil
}

func (c *kconsumer) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// onAssigned registers newly assigned partitions. A member assigned nothing
// new is live at once; otherwise adjustOffsets, which runs next, makes it
// live once the starting positions are fixed.
func (c *kconsumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ps := assigned[c.s.topic]
	c.mu.Lock()
	for _, p := range ps {
		if old := c.parts[p]; old == nil || old.isRevoked() {
			c.parts[p] = newPartState(p)
		}
	}
	c.mu.Unlock()
	if len(ps) == 0 {
		c.markReady()
	}
}

// adjustOffsets runs before fetching newly assigned partitions, with their
// committed offsets. A partition without one gets a concrete starting
// position, which is committed at once: so a member that takes it over
// later, even after this process crashed, starts there and skips nothing.
// A group with no commit on the topic at all is new and starts per
// KafkaConfig.InitialOffset; a partition missing from a group that has
// commits on other partitions was added to the topic later and starts at its
// beginning (a member of a brand-new group that joins exactly as another
// commits may also take this branch: it reads that partition's older
// records, duplicates rather than loss).
func (c *kconsumer) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topic := c.s.topic
	parts := offsets[topic]
	starts := make(map[int32]int64, len(parts))
	var missing []int32
	for p, o := range parts {
		if eo := o.EpochOffset(); eo.Offset >= 0 {
			starts[p] = eo.Offset
		} else {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		resolved, err := c.startPositions(ctx, missing)
		if err != nil {
			c.t.bus.logger.Warn("eventstream: cannot resolve starting offsets; retrying with the next session",
				"topic", topic, "group", c.s.group, "error", err)
			return nil, err
		}
		for p, off := range resolved {
			parts[p] = kgo.NewOffset().At(off).WithEpoch(-1)
			starts[p] = off
		}
		if cl := c.cl.Load(); cl != nil {
			if err := c.commitStart(ctx, cl, resolved); err != nil {
				c.t.bus.logger.Warn("eventstream: starting offsets not committed; they will be with the first handled event",
					"topic", topic, "group", c.s.group, "error", err)
			} else {
				c.mu.Lock()
				for p, off := range resolved {
					if ps := c.parts[p]; ps != nil {
						ps.committed.Store(off)
					}
				}
				c.mu.Unlock()
			}
		}
	}
	c.mu.Lock()
	for p, off := range starts {
		ps := c.parts[p]
		if ps == nil || ps.isRevoked() {
			ps = newPartState(p)
			c.parts[p] = ps
		}
		ps.setStart(off)
	}
	c.mu.Unlock()
	c.markReady()
	return offsets, nil
}

// commitStart commits starting positions as the member, with a request of
// its own: franz-go's commit bookkeeping for the session starts only after
// this point.
func (c *kconsumer) commitStart(ctx context.Context, cl *kgo.Client, offsets map[int32]int64) error {
	details, err := c.t.adm.ListTopics(ctx, c.s.topic)
	if err != nil {
		return err
	}
	member, generation := cl.GroupMetadata()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = c.s.group, member, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic, rt.TopicID = c.s.topic, details[c.s.topic].ID
	for p, off := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, off, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *kconsumer) startPositions(ctx context.Context, missing []int32) (map[int32]int64, error) {
	adm := c.t.adm
	topic := c.s.topic
	committed, err := adm.FetchOffsets(ctx, c.s.group)
	if err != nil {
		return nil, err
	}
	groupHasCommits := false
	for _, o := range committed[topic] {
		if o.Err == nil && o.At >= 0 {
			groupHasCommits = true
		}
	}
	var listed kadm.ListedOffsets
	if groupHasCommits || c.t.cfg.InitialOffset == InitialOffsetEarliest {
		listed, err = adm.ListStartOffsets(ctx, topic)
	} else {
		listed, err = adm.ListEndOffsets(ctx, topic)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(missing))
	for _, p := range missing {
		lo, ok := listed.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("no offset listed for partition %d: %v", p, listed)
		}
		if lo.Err != nil {
			return nil, lo.Err
		}
		out[p] = lo.Offset
	}
	return out, nil
}

// onRevoked stops the revoked partitions' queued events, waits for the ones
// in flight, and commits what is done. It also runs at the end of every
// group session (revoking nothing), where it commits everything done.
func (c *kconsumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	var lost []*partState
	c.mu.Lock()
	for _, p := range revoked[c.s.topic] {
		if ps := c.parts[p]; ps != nil {
			ps.revoke()
			lost = append(lost, ps)
		}
	}
	c.mu.Unlock()
	wait := c.t.bus.cfg.ShutdownTimeout
	if c.abandon.Load() {
		wait = 0
	}
	deadline := time.Now().Add(wait)
	for _, ps := range lost {
		ps.waitIdle(time.Until(deadline))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.commit(cctx, cl, append(c.owned(), lost...))
	c.mu.Lock()
	for _, ps := range lost {
		if c.parts[ps.partition] == ps {
			delete(c.parts, ps.partition)
		}
	}
	c.mu.Unlock()
}

// onLost drops partitions the member lost without a clean revoke (it was
// fenced, or its session expired): another member owns them and commits.
func (c *kconsumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range lost[c.s.topic] {
		if ps := c.parts[p]; ps != nil {
			ps.revoke()
			delete(c.parts, p)
		}
	}
}

// owned returns the partitions the member holds.
func (c *kconsumer) owned() []*partState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*partState, 0, len(c.parts))
	for _, ps := range c.parts {
		if !ps.isRevoked() {
			out = append(out, ps)
		}
	}
	return out
}

// commit commits the handled offsets of parts that moved since their last
// commit.
func (c *kconsumer) commit(ctx context.Context, cl *kgo.Client, parts []*partState) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	offsets := map[int32]kgo.EpochOffset{}
	for _, ps := range parts {
		if eo, ok := ps.toCommit(); ok {
			offsets[ps.partition] = eo
		}
	}
	if len(offsets) == 0 {
		return
	}
	if err := commitSync(ctx, cl, map[string]map[int32]kgo.EpochOffset{c.s.topic: offsets}); err != nil {
		if !errors.Is(err, context.Canceled) {
			c.t.bus.logger.Warn("eventstream: offset commit failed; retried with the next one",
				"topic", c.s.topic, "group", c.s.group, "error", err)
		}
		return
	}
	for _, ps := range parts {
		if eo, ok := offsets[ps.partition]; ok {
			ps.committed.Store(eo.Offset)
		}
	}
}

// commitSync commits offsets as the member and returns the first error,
// request-wide or per partition.
func commitSync(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var rerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && rerr == nil {
					rerr = err
				}
			}
		}
	})
	return rerr
}

func (c *kconsumer) commitLoop() {
	defer close(c.commitDone)
	tick := time.NewTicker(c.t.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stopCommit:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(c.pollCtx, 10*time.Second)
			c.commit(ctx, c.cl.Load(), c.owned())
			cancel()
		}
	}
}

// poll fetches and dispatches until stopped.
func (c *kconsumer) poll(cl *kgo.Client) {
	defer close(c.pollDone)
	for {
		fs := cl.PollRecords(c.pollCtx, maxPollRecords)
		if c.pollCtx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(c.fetchError)
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if fp.Topic != c.s.topic {
				return
			}
			c.mu.Lock()
			ps := c.parts[fp.Partition]
			end, draining := c.drainEnds[fp.Partition]
			stop := c.drainEnds != nil && !draining
			c.mu.Unlock()
			if ps == nil || stop {
				return
			}
			ps.hwm.Store(fp.HighWatermark)
			for _, r := range fp.Records {
				if draining && r.Offset >= end {
					return
				}
				seq, ok := ps.track(r.Offset)
				if !ok {
					return
				}
				if !c.pick(r).push(c.pollCtx, kitem{rec: r, ps: ps, seq: seq}) {
					return
				}
			}
		})
	}
}

func (c *kconsumer) fetchError(topic string, partition int32, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && !ke.Retriable {
		select {
		case <-c.ready:
		default: // On is waiting: tell it now rather than at JoinTimeout
			select {
			case c.joinErr <- err:
			default:
			}
		}
	}
	c.mu.Lock()
	now := time.Now()
	log := now.After(c.warnEvery)
	if log {
		c.warnEvery = now.Add(5 * time.Second)
	}
	c.mu.Unlock()
	if log {
		c.t.bus.logger.Warn("eventstream: fetch error (the client retries)", "topic", topic,
			"partition", partition, "group", c.s.group, "error", err)
	}
}

// pick chooses the lane of a record: by key, so a key's records keep their
// order; keyless records round robin.
func (c *kconsumer) pick(r *kgo.Record) *klane {
	n := uint64(len(c.lanes))
	if n == 1 {
		return c.lanes[0]
	}
	if len(r.Key) > 0 {
		return c.lanes[fnv1aBytes(r.Key)%n]
	}
	return c.lanes[c.rr.Add(1)%n]
}

func fnv1aBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// handle runs one record through the subscription, unless its partition
// was revoked or the member is leaving before it started.
func (c *kconsumer) handle(it kitem) {
	ps := it.ps
	if c.abandon.Load() || !ps.begin() {
		return
	}
	ctx := c.t.bus.baseCtx
	e, derr := decode(it.rec)
	// A dead letter is always delivered: its subscriber is there to see
	// what failed, JSON or not.
	if derr != nil && c.t.cfg.NonJSON == NonJSONDeadLetter && e.Headers[HeaderDeadLetterTopic] == "" {
		c.t.bus.deadLetter(ctx, c.s, e, derr)
	} else {
		c.s.deliver(ctx, e)
	}
	ps.finish(it.seq, it.rec.Offset, it.rec.LeaderEpoch)
}

// queued is the subscription's eventstream.queue.depth: records fetched and
// not yet finished.
func (c *kconsumer) queued() int64 {
	var n int64
	for _, l := range c.lanes {
		n += l.depth.Load()
	}
	return n
}

// setDrainEnds fixes, for Close, the offsets up to which each partition is
// consumed (ends of the topic at the time; nil when they could not be
// listed: then what was fetched is drained).
func (c *kconsumer) setDrainEnds(ends kadm.ListedOffsets) {
	m := map[int32]int64{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, ps := range c.parts {
		if lo, ok := ends.Lookup(c.s.topic, p); ok && lo.Err == nil {
			m[p] = lo.Offset
		} else {
			m[p] = ps.dispatchedEnd()
		}
	}
	c.drainEnds = m
}

// pending counts the records below the drain ends that are not finished.
func (c *kconsumer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for p, ps := range c.parts {
		if ps.isRevoked() {
			continue
		}
		end, ok := c.drainEnds[p]
		if !ok {
			continue
		}
		mark := ps.markOffset()
		switch {
		case mark < 0:
			n++ // starting position not known yet
		case mark < end:
			n += int(end - mark)
		}
	}
	return n
}

// shutdown stops the member: no more fetching; with abandon, queued events
// that have not started are left (for the next owner); in-flight handlers
// finish (up to wait); handled offsets are committed; the member leaves
// its group (a private group is then deleted).
func (c *kconsumer) shutdown(abandon bool, wait time.Duration) {
	c.shutOnce.Do(func() {
		c.stopPoll()
		<-c.pollDone
		if abandon {
			c.abandon.Store(true)
		}
		deadline := time.Now().Add(wait)
		for _, l := range c.lanes {
			if !l.waitIdle(time.Until(deadline)) {
				c.abandon.Store(true)
				c.t.bus.logger.Warn("eventstream: handler still running at shutdown; its event stays uncommitted",
					"topic", c.s.topic, "group", c.s.group)
				break
			}
		}
		close(c.stopCommit)
		<-c.commitDone
		cl := c.cl.Load()
		// Bounded, so that a bus whose brokers are gone still closes.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.commit(ctx, cl, c.owned())
		c.abandon.Store(true) // the final revoke must not wait again
		if err := cl.LeaveGroupContext(ctx); err != nil {
			c.t.bus.logger.Warn("eventstream: leaving the consumer group failed; the broker drops the member after its session timeout",
				"topic", c.s.topic, "group", c.s.group, "error", err)
		}
		cl.Close()
		if c.private {
			if _, err := c.t.adm.DeleteGroup(ctx, c.s.group); err != nil {
				c.t.bus.logger.Debug("eventstream: private consumer group not deleted", "group", c.s.group, "error", err)
			}
		}
	})
}

// kitem is a record on its way to a handler.
type kitem struct {
	rec *kgo.Record
	ps  *partState
	seq int64
}

// klane is a bounded FIFO of records drained by at most one pooled worker.
type klane struct {
	c        *kconsumer
	capacity int
	depth    atomic.Int64

	mu    sync.Mutex
	q     []kitem
	spare []kitem
	busy  bool
	room  chan struct{} // closed when room frees up; nil without a waiter
	idle  chan struct{} // closed when the worker leaves; nil without a waiter
}

// push appends it, waiting while the lane is full; false when ctx ended.
func (l *klane) push(ctx context.Context, it kitem) bool {
	l.mu.Lock()
	for len(l.q) >= l.capacity {
		if l.room == nil {
			l.room = make(chan struct{})
		}
		room := l.room
		l.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
		l.mu.Lock()
	}
	l.q = append(l.q, it)
	l.depth.Add(1)
	start := !l.busy
	l.busy = true
	l.mu.Unlock()
	if start {
		if err := l.c.t.pool.Submit(l.run); err != nil {
			// The pool is closed: the bus is closing and nothing runs
			// any more; the records stay uncommitted.
			l.mu.Lock()
			l.busy = false
			l.mu.Unlock()
		}
	}
	return true
}

func (l *klane) run() {
	for {
		l.mu.Lock()
		if len(l.q) == 0 {
			l.busy = false
			if l.idle != nil {
				close(l.idle)
				l.idle = nil
			}
			l.mu.Unlock()
			return
		}
		batch := l.q
		l.q, l.spare = l.spare[:0], nil
		if l.room != nil {
			close(l.room)
			l.room = nil
		}
		l.mu.Unlock()
		for i := range batch {
			l.c.handle(batch[i])
			batch[i] = kitem{}
			l.depth.Add(-1)
		}
		l.mu.Lock()
		l.spare = batch[:0]
		l.mu.Unlock()
	}
}

// waitIdle waits until the lane's worker has left, up to d.
func (l *klane) waitIdle(d time.Duration) bool {
	l.mu.Lock()
	if !l.busy {
		l.mu.Unlock()
		return true
	}
	if l.idle == nil {
		l.idle = make(chan struct{})
	}
	idle := l.idle
	l.mu.Unlock()
	return waitClosed(idle, d)
}

// waitClosed waits until ch is closed, up to d; it reports whether it was.
func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(max(d, 0))
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// partState tracks one assigned partition: the offsets dispatched in order,
// which have finished, and so the offset to commit.
type partState struct {
	partition int32
	hwm       atomic.Int64 // high watermark from the last fetch; -1 unknown
	committed atomic.Int64 // last committed offset; -1 unknown

	mu       sync.Mutex
	revoked  bool
	running  int
	idle     chan struct{}
	pend     []pendingOffset // dispatched records; pend[head:] are not all finished
	head     int
	base     int64 // seq of pend[0]
	next     int64 // seq of the next dispatched record
	mark     int64 // every offset below it is finished; -1 unknown
	epoch    int32 // leader epoch of the record before mark
	dispHigh int64 // offset after the last dispatched record; -1 none
}

type pendingOffset struct {
	offset int64
	epoch  int32
	done   bool
}

func newPartState(p int32) *partState {
	ps := &partState{partition: p, mark: -1, epoch: -1, dispHigh: -1}
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

// track registers a dispatched offset and returns its sequence number.
func (ps *partState) track(off int64) (int64, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.revoked {
		return 0, false
	}
	if len(ps.pend) == ps.head { // all finished: start over
		ps.pend, ps.head, ps.base = ps.pend[:0], 0, ps.next
	}
	ps.pend = append(ps.pend, pendingOffset{offset: off, epoch: -1})
	ps.dispHigh = off + 1
	seq := ps.next
	ps.next++
	return seq, true
}

// begin marks a handler starting; false when the partition was revoked.
func (ps *partState) begin() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.revoked {
		return false
	}
	ps.running++
	return true
}

// finish marks seq done and moves the mark past every finished prefix.
func (ps *partState) finish(seq, off int64, epoch int32) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.running--
	if ps.running == 0 && ps.idle != nil {
		close(ps.idle)
		ps.idle = nil
	}
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
	// Drop the finished prefix once it is most of the slice: amortized
	// O(1) per record however far apart lanes finish.
	if h > 256 && h > len(ps.pend)/2 {
		n := copy(ps.pend, ps.pend[h:])
		ps.pend, ps.head, ps.base = ps.pend[:n], 0, ps.base+int64(h)
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
	waitClosed(idle, d)
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

func (ps *partState) committedOffset() int64 { return ps.committed.Load() }
