package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
)

// consumer is one subscription's member of its consumer group.
//
// A poll goroutine hands records, in offset order, to the subscription's
// lanes: one lane per unit of concurrency, chosen by key (keyless records
// round robin), each run by at most one of the host's workers at a time, so
// a key's records run one at a time, in order. The poll goroutine never
// waits for a worker; it waits only for room in a full lane, which pauses
// this subscription's fetching and nothing else.
//
// Each partition tracks which of its dispatched offsets are done; the
// committed offset is the first one that is not, so nothing is committed
// before its handler (or dead letter) is done, even when lanes finish out
// of order. Commits happen every CommitInterval, on every rebalance, when
// the member leaves and on Close.
type consumer struct {
	t     *Transport
	sub   *transport.Sub
	cl    atomic.Pointer[kgo.Client]
	lanes []*lanes.Lane[item]
	seed  maphash.Seed
	rr    atomic.Uint64

	pollCtx  context.Context
	stopPoll context.CancelFunc
	// handlers is the parent of its partitions' handler contexts
	// (leave.go); endHandlers cancels it when the member leaves.
	handlers     context.Context
	endHandlers  context.CancelFunc
	clientCtx    context.Context
	cancelClient context.CancelFunc
	pollDone     chan struct{}
	stopCommit   chan struct{}
	commitDone   chan struct{}

	ready     chan struct{} // closed once On may return
	readyOnce sync.Once
	joinErr   chan error // a group error that retrying will not fix, before ready

	mu        sync.Mutex
	parts     map[int32]*partState
	drainEnds map[int32]int64 // set by Drain: dispatch no further
	warnEvery time.Time       // rate limit of fetch error logs

	parking parking // deliveries set aside (park.go)

	abandon   atomic.Bool // records that have not started are left alone
	stopOnce  sync.Once
	leaveOnce sync.Once
	leaveBy   atomic.Int64 // unix nanos: the deadline of the leave under way; 0 none
	commitMu  sync.Mutex
}

// item is a record on its way to a handler.
type item struct {
	rec      *kgo.Record
	ps       *partState
	seq      int64
	lane     *lanes.Lane[item] // where it waits when its retry is due later
	replayed bool              // held aside behind a parked dead letter, then pushed back (park.go)
}

// maxPollRecords bounds one poll; the lanes bound what waits beyond it.
const maxPollRecords = 1024

func newConsumer(t *Transport, s *transport.Sub) (*consumer, error) {
	c := &consumer{
		t: t, sub: s,
		seed:       maphash.MakeSeed(),
		pollDone:   make(chan struct{}),
		stopCommit: make(chan struct{}),
		commitDone: make(chan struct{}),
		ready:      make(chan struct{}),
		joinErr:    make(chan error, 1),
		parts:      map[int32]*partState{},
	}
	c.pollCtx, c.stopPoll = context.WithCancel(context.Background())
	c.handlers, c.endHandlers = context.WithCancel(t.host.BaseCtx)
	c.parking.ctx, c.parking.cancel = context.WithCancel(context.Background())
	c.lanes = make([]*lanes.Lane[item], max(s.Concurrency, 1))
	for i := range c.lanes {
		c.lanes[i] = lanes.New(t.host.Sched, t.host.QueueSize, c.handle, c.abort)
	}
	cfg := t.cfg
	opts := append([]kgo.Opt(nil), t.base...)
	c.clientCtx, c.cancelClient = context.WithCancel(context.Background())
	opts = append(opts,
		// Cancelled once the member's bounded leave is over: Close, which
		// leaves the group again under the client's context if it can,
		// then has nothing left to wait for.
		kgo.WithContext(c.clientCtx),
		kgo.ConsumerGroup(s.Group),
		kgo.ConsumeTopics(s.Topic),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.AdjustFetchOffsetsFn(c.adjustOffsets),
		// Partitions without a commit that adjustOffsets could not
		// resolve start at the beginning: duplicates, never a gap.
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.FetchMaxWait(cfg.FetchMaxWait),
	)
	opts = append(opts, cfg.ConsumerOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.stopPoll()
		c.cancelClient()
		c.parking.cancel()
		c.endHandlers()
		return nil, &Error{Op: "create consumer", Topic: s.Topic, Err: err}
	}
	c.cl.Store(cl)
	go c.poll(cl)
	go c.commitLoop()
	return c, nil
}

func (c *consumer) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// handle runs one record through the subscription, unless its partition
// was revoked, or the member is leaving, before it started.
func (c *consumer) handle(it item) {
	if c.abandon.Load() || c.holdAside(it) || !it.ps.begin(it.rec.Offset) {
		return
	}
	e, derr := c.t.codec.decode(it.rec)
	var failure error
	if derr != nil {
		failure = derr // the bus applies the NonJSON policy
	}
	c.deliver(it, e, failure)
}

// abort is the lane's word that a handler ended its goroutine inside
// Deliver (so begin had succeeded): the bus decides what the failure means.
func (c *consumer) abort(it item) {
	e, _ := c.t.codec.decode(it.rec)
	c.deliver(it, e, transport.ErrGoexit)
}

// deliver hands e to the subscription and marks its offset done, unless the
// bus says it is not done (shutting down, or a dead letter that could not be
// written): then the partition stops where it is, so that no commit passes
// the event and the group's next owner gets it again.
func (c *consumer) deliver(it item, e *event.Event, failure error) {
	c.deliverCtx(c.handlerCtx(it.ps), it, e, failure)
}

func (c *consumer) deliverCtx(ctx context.Context, it item, e *event.Event, failure error) {
	if err := c.sub.Deliver(ctx, e, failure); err != nil {
		if again, ok := err.(*transport.Again); ok {
			c.park(it, e, again)
			return
		}
		var p *transport.Pending
		if errors.As(err, &p) {
			c.parkPending(it, p) // the partition's share of the lane waits; the rest goes on
			return
		}
		it.ps.stall(it.rec.Offset)
		return
	}
	it.ps.finish(it.seq, it.rec.Offset, it.rec.LeaderEpoch)
}

// onAssigned registers newly assigned partitions. A member assigned nothing
// new is live at once; otherwise adjustOffsets, which runs next, makes it
// live once the starting positions are fixed.
func (c *consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ps := assigned[c.sub.Topic]
	c.mu.Lock()
	for _, p := range ps {
		if old := c.parts[p]; old == nil || old.isRevoked() {
			c.parts[p] = c.newPart(p)
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
// Config.Earliest; a partition missing from a group that has commits on
// other partitions was added to the topic later and starts at its
// beginning (a member of a brand-new group that joins exactly as another
// commits may also take this branch: it reads that partition's older
// records, duplicates rather than loss).
func (c *consumer) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topic := c.sub.Topic
	parts := offsets[topic]
	starts := make(map[int32]int64, len(parts))
	// What the group has committed: the offsets given here, and the
	// starting positions once committed. The lag is measured from it.
	committed := make(map[int32]int64, len(parts))
	var missing []int32
	for p, o := range parts {
		if eo := o.EpochOffset(); eo.Offset >= 0 {
			starts[p], committed[p] = eo.Offset, eo.Offset
		} else {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		resolved, err := c.startPositions(ctx, missing)
		if err != nil {
			c.t.host.Logger.Warn("eventstream: cannot resolve starting offsets; retrying with the next session",
				"topic", topic, "group", c.sub.Group, "error", err)
			return nil, err
		}
		for p, off := range resolved {
			parts[p] = kgo.NewOffset().At(off).WithEpoch(-1)
			starts[p] = off
		}
		if cl := c.cl.Load(); cl != nil {
			if err := c.commitStart(ctx, cl, resolved); err != nil {
				c.t.host.Logger.Warn("eventstream: starting offsets not committed; they will be with the first handled event",
					"topic", topic, "group", c.sub.Group, "error", err)
			} else {
				for p, off := range resolved {
					committed[p] = off
				}
			}
		}
	}
	c.mu.Lock()
	for p, off := range starts {
		ps := c.parts[p]
		if ps == nil || ps.isRevoked() {
			ps = c.newPart(p)
			c.parts[p] = ps
		}
		ps.setStart(off)
		if co, ok := committed[p]; ok {
			ps.committed.Store(co)
		}
	}
	c.mu.Unlock()
	c.markReady()
	return offsets, nil
}

// commitStart commits starting positions as the member, with a request of
// its own: franz-go's commit bookkeeping for the session starts only after
// this point.
func (c *consumer) commitStart(ctx context.Context, cl *kgo.Client, offsets map[int32]int64) error {
	details, err := c.t.adm.ListTopics(ctx, c.sub.Topic)
	if err != nil {
		return err
	}
	member, generation := cl.GroupMetadata()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = c.sub.Group, member, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic, rt.TopicID = c.sub.Topic, details[c.sub.Topic].ID
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

func (c *consumer) startPositions(ctx context.Context, missing []int32) (map[int32]int64, error) {
	adm := c.t.adm
	topic := c.sub.Topic
	committed, err := adm.FetchOffsets(ctx, c.sub.Group)
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
	if groupHasCommits || c.t.cfg.Earliest {
		listed, err = adm.ListStartOffsets(ctx, topic)
	} else {
		listed, err = adm.ListEndOffsets(ctx, topic)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(missing))
	for _, p := range missing {
		// Another member of a new group fixed it since franz-go fetched
		// the offsets (see awaitStarts): start where it did.
		if o, ok := committed.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
			out[p] = o.At
			continue
		}
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

// startFixGrace is how long a member waits for the members assigned the
// topic's partitions to fix their starting positions before it fixes them
// itself: they do so right after the assignment, within milliseconds
// unless their commit failed.
const startFixGrace = 3 * time.Second

// awaitStarts returns once the group has a starting position committed for
// every partition of the topic, whoever committed it, so that an event
// emitted once On returns is never before the group's start. Without it, a
// member assigned nothing (two replicas starting together on a topic of
// one partition) would return at once, before the other member fixed the
// start at the end of the log, and its first events would be skipped.
func (c *consumer) awaitStarts(ctx context.Context) error {
	grace := time.Now().Add(startFixGrace)
	for {
		missing, err := c.unstarted(ctx)
		switch {
		case err == nil && len(missing) == 0:
			return nil
		case err == nil && time.Now().After(grace):
			resolved, rerr := c.startPositions(ctx, missing)
			if rerr == nil {
				rerr = c.commitStart(ctx, c.cl.Load(), resolved)
			}
			if rerr == nil {
				return nil
			}
			err = rerr
		}
		if err != nil && ctx.Err() == nil {
			c.t.host.Logger.Debug("eventstream: checking the group's starting offsets; retrying",
				"topic", c.sub.Topic, "group", c.sub.Group, "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// unstarted returns the topic's partitions for which the group has no
// committed offset.
func (c *consumer) unstarted(ctx context.Context) ([]int32, error) {
	topic := c.sub.Topic
	details, err := c.t.adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := details[topic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return nil, fmt.Errorf("no partitions listed for the topic: %v", td.Err)
	}
	committed, err := c.t.adm.FetchOffsets(ctx, c.sub.Group)
	if err != nil {
		return nil, err
	}
	var missing []int32
	for p := range td.Partitions {
		if o, ok := committed.Lookup(topic, p); !ok || o.Err != nil || o.At < 0 {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// onRevoked stops the revoked partitions' queued records, waits for the
// ones in flight, and commits what is done. It also runs at the end of
// every group session (revoking nothing), where it commits everything done.
func (c *consumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	var lost []*partState
	c.mu.Lock()
	for _, p := range revoked[c.sub.Topic] {
		if ps := c.parts[p]; ps != nil {
			ps.revoke()
			lost = append(lost, ps)
		}
	}
	c.mu.Unlock()
	wait := c.t.host.ShutdownTimeout
	if c.abandon.Load() {
		wait = 0 // the member is leaving and waited already
	}
	deadline := time.Now().Add(wait)
	for _, ps := range lost {
		ps.waitIdle(time.Until(deadline))
		ps.endHandlers() // those still running: their records go to the next owner
	}
	cctx, cancel := c.opContext(ctx)
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
func (c *consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range lost[c.sub.Topic] {
		if ps := c.parts[p]; ps != nil {
			ps.revoke()
			ps.endHandlers() // another member owns it already
			delete(c.parts, p)
		}
	}
}

// owned returns the partitions the member holds.
func (c *consumer) owned() []*partState {
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

// commit commits the done offsets of parts that moved since their last
// commit.
func (c *consumer) commit(ctx context.Context, cl *kgo.Client, parts []*partState) {
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
	if err := commitSync(ctx, cl, map[string]map[int32]kgo.EpochOffset{c.sub.Topic: offsets}); err != nil {
		if !errors.Is(err, context.Canceled) {
			c.t.host.Logger.Warn("eventstream: offset commit failed; retried with the next one",
				"topic", c.sub.Topic, "group", c.sub.Group, "error", err)
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

func (c *consumer) commitLoop() {
	defer close(c.commitDone)
	tick := time.NewTicker(c.t.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stopCommit:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(c.pollCtx, clientOpTimeout)
			c.commit(ctx, c.cl.Load(), c.owned())
			cancel()
		}
	}
}

// poll fetches and dispatches until stopped.
func (c *consumer) poll(cl *kgo.Client) {
	defer close(c.pollDone)
	for {
		fs := cl.PollRecords(c.pollCtx, maxPollRecords)
		if c.pollCtx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(c.fetchError)
		stopped := false
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if stopped || fp.Topic != c.sub.Topic {
				return
			}
			c.mu.Lock()
			ps := c.parts[fp.Partition]
			end, draining := c.drainEnds[fp.Partition]
			skip := c.drainEnds != nil && !draining
			c.mu.Unlock()
			if ps == nil || skip {
				return
			}
			ps.hwm.Store(fp.HighWatermark)
			recs := fp.Records
			if draining {
				n := 0
				for n < len(recs) && recs[n].Offset < end {
					n++
				}
				recs = recs[:n]
			}
			first, ok := ps.track(recs)
			if !ok {
				return // revoked, or stopped at an event that is not done
			}
			// Records tracked but not pushed (the member is stopping)
			// stay unfinished: nothing is committed past them.
			for i, r := range recs {
				l := c.pick(r)
				if l.WaitRoom(c.pollCtx) != nil || !l.Push(item{rec: r, ps: ps, seq: first + int64(i), lane: l}) {
					stopped = true
					return
				}
			}
		})
	}
}

func (c *consumer) fetchError(topic string, partition int32, err error) {
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
		c.t.host.Logger.Warn("eventstream: fetch error (the client retries)", "topic", topic,
			"partition", partition, "group", c.sub.Group, "error", err)
	}
}

// pick chooses the lane of a record: by key, so a key's records keep their
// order; keyless records round robin.
func (c *consumer) pick(r *kgo.Record) *lanes.Lane[item] {
	n := uint64(len(c.lanes))
	if n == 1 {
		return c.lanes[0]
	}
	if len(r.Key) > 0 {
		return c.lanes[maphash.Bytes(c.seed, r.Key)%n]
	}
	return c.lanes[c.rr.Add(1)%n]
}

// queued is the subscription's eventstream.queue.depth: records fetched
// and not yet handled.
func (c *consumer) queued() int64 {
	var n int64
	for _, l := range c.lanes {
		n += l.Depth()
	}
	return n
}

// setDrainEnds fixes, for Close, the offsets up to which each partition is
// consumed (ends of the topic at the time; those not listed: what was
// dispatched).
func (c *consumer) setDrainEnds(ends kadm.ListedOffsets) {
	m := map[int32]int64{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, ps := range c.parts {
		if lo, ok := ends.Lookup(c.sub.Topic, p); ok && lo.Err == nil {
			m[p] = lo.Offset
		} else {
			m[p] = ps.dispatchedEnd()
		}
	}
	c.drainEnds = m
}

// pending counts the records below the drain ends that are not done.
func (c *consumer) pending() int {
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

// stop is the member's end at Close: no more fetching, queued records are
// left for the group's next member, handlers in flight get until by, then
// the member commits and leaves, each step bounded by what is left until by.
func (c *consumer) stop(by time.Time) {
	c.stopFetching()
	c.abandonQueued()
	c.waitHandlers(time.Until(by))
	c.giveUpParked() // Drain counted them
	c.leave(by)
}

// stopFetching stops the poll goroutine; the lanes refuse further records.
func (c *consumer) stopFetching() {
	c.stopOnce.Do(func() {
		c.stopPoll()
		<-c.pollDone
		for _, l := range c.lanes {
			l.Stop()
		}
	})
}

// waitQueued lets the lanes run what they hold, up to d.
func (c *consumer) waitQueued(d time.Duration) {
	deadline := time.Now().Add(d)
	for _, l := range c.lanes {
		if !l.WaitIdle(time.Until(deadline)) {
			return
		}
	}
}

// abandonQueued leaves the records that have not started: they stay
// uncommitted, so the group's next owner of their partitions gets them.
func (c *consumer) abandonQueued() {
	c.abandon.Store(true)
	for _, l := range c.lanes {
		l.Abandon()
	}
}

// callerLane returns the lane whose handler is the calling goroutine: Off
// called from one of the member's own handlers must not wait for it.
func (c *consumer) callerLane() *lanes.Lane[item] {
	for _, l := range c.lanes {
		if l.CalledFromHandler() {
			return l
		}
	}
	return nil
}

// waitOthers waits until no lane but own (the caller's) runs a handler.
func (c *consumer) waitOthers(own *lanes.Lane[item]) {
	lanes.PollUntil(c.t.ctx, time.Millisecond, func() int {
		n := 0
		for _, l := range c.lanes {
			if l != own && l.Handling() {
				n++
			}
		}
		return n
	})
}

// waitHandlers waits until no handler of the member runs, up to d (d < 0:
// until Close cuts the wait short). A handler still running afterwards
// keeps its event uncommitted.
func (c *consumer) waitHandlers(d time.Duration) {
	var cut <-chan time.Time
	if d >= 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		cut = timer.C
	}
	for _, l := range c.lanes {
		idle := l.Idle()
		select {
		case <-idle:
			continue // first, as select picks among ready cases at random
		default:
		}
		select {
		case <-idle:
			continue
		case <-cut:
		case <-c.t.ctx.Done():
		}
		c.t.host.Logger.Warn("eventstream: handler still running as the member leaves; its event stays uncommitted",
			"topic", c.sub.Topic, "group", c.sub.Group)
		return
	}
}

// leave commits what is done, leaves the group and closes the client; a
// private group is deleted. Every request is bounded by by, so that a bus
// whose brokers are gone still closes: what does not fit is skipped (the
// broker drops the member after its session timeout, and the events
// handled since the last commit are delivered again).
func (c *consumer) leave(by time.Time) {
	c.leaveOnce.Do(func() {
		c.leaveBy.Store(by.UnixNano())
		close(c.stopCommit)
		<-c.commitDone
		cl := c.cl.Load()
		ctx, cancel := context.WithDeadline(context.Background(), by)
		defer cancel()
		c.commit(ctx, cl, c.owned())
		c.abandon.Store(true) // the final revoke must not wait again
		if err := cl.LeaveGroupContext(ctx); err != nil {
			c.t.host.Logger.Warn("eventstream: leaving the consumer group failed; the broker drops the member after its session timeout",
				"topic", c.sub.Topic, "group", c.sub.Group, "error", err)
		}
		// Whether the leave is done or its time ran out, nothing more is
		// asked of the brokers: Close must not send another, unbounded one.
		c.cancelClient()
		c.endHandlers()
		cl.Close()
		if c.sub.Private && ctx.Err() == nil {
			if _, err := c.t.adm.DeleteGroup(ctx, c.sub.Group); err != nil {
				c.t.host.Logger.Debug("eventstream: private consumer group not deleted", "group", c.sub.Group, "error", err)
			}
		}
	})
}

// opContext bounds one of the member's own requests: clientOpTimeout, and
// no later than the deadline of a leave under way.
func (c *consumer) opContext(parent context.Context) (context.Context, context.CancelFunc) {
	d := time.Now().Add(clientOpTimeout)
	if by := c.leaveBy.Load(); by != 0 && by < d.UnixNano() {
		d = time.Unix(0, by)
	}
	return context.WithDeadline(parent, d)
}
