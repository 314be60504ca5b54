package eventstream

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"

	"libx.net/eventstream/telemetry"
)

// memoryTransport is the in-process transport.
//
// Each subscription has one lane per unit of concurrency: a bounded FIFO
// that at most one pooled worker drains at a time. Emit routes an event to
// one lane of every consumer group of its topic (by key hash, else round
// robin), so a group's members share its events and a key always meets the
// same lane, which keeps its order. A lane asks the ants pool for a worker
// only when it goes from idle to busy; under load a worker drains batch
// after batch, so the hot path pays no Submit per event.
type memoryTransport struct {
	bus   *bus
	sched *scheduler
	// routes is read on every Emit without a lock and replaced, copied, on
	// every On and Off.
	routes   atomic.Pointer[routeTable]
	routesMu sync.Mutex
	lanes    map[*subscription][]*lane // guarded by routesMu
}

type routeTable map[string][]*groupRoute // topic → its consumer groups

type groupRoute struct {
	name  string
	lanes []*lane
	rr    *atomic.Uint64 // shared across rebuilds so round robin keeps going
}

func newMemoryTransport(b *bus) (transport, error) {
	s, err := newScheduler(b.cfg.Pool)
	if err != nil {
		return nil, err
	}
	t := &memoryTransport{bus: b, sched: s, lanes: map[*subscription][]*lane{}}
	t.routes.Store(&routeTable{})
	return t, nil
}

func (t *memoryTransport) system() string { return telemetry.SystemMemory }

// publish implements transport. It is all-or-nothing while the group
// membership holds still: it first waits until every target lane has room,
// then appends to all, so an Emit that gives up on a full queue has reached
// no group. Up to eight groups are served without allocating.
func (t *memoryTransport) publish(ctx context.Context, e *Event) error {
	groups := (*t.routes.Load())[e.Topic]
	var buf [8]*lane
	targets := buf[:0]
	for _, g := range groups {
		targets = append(targets, g.pick(e.Key))
	}
	for _, l := range targets {
		if err := l.waitRoom(ctx); err != nil {
			return err
		}
	}
	var missed []string
	for _, l := range targets {
		if !l.push(e) {
			missed = append(missed, l.sub.group)
		}
	}
	if missed != nil {
		return t.reroute(ctx, e, missed)
	}
	return nil
}

// reroute serves the groups whose lane closed between routing and push
// (its subscription left) through their remaining members.
func (t *memoryTransport) reroute(ctx context.Context, e *Event, groups []string) error {
	for len(groups) > 0 {
		routes := (*t.routes.Load())[e.Topic]
		var still []string
		for _, name := range groups {
			for _, g := range routes {
				if g.name != name {
					continue
				}
				l := g.pick(e.Key)
				if err := l.waitRoom(ctx); err != nil {
					return err
				}
				if !l.push(e) {
					still = append(still, name)
				}
			}
		}
		groups = still
	}
	return nil
}

func (g *groupRoute) pick(key string) *lane {
	n := uint64(len(g.lanes))
	if n == 1 {
		return g.lanes[0]
	}
	if key != "" {
		return g.lanes[fnv1a(key)%n]
	}
	return g.lanes[g.rr.Add(1)%n]
}

// subscribe implements transport: the subscription is live once the new
// route table is stored.
func (t *memoryTransport) subscribe(s *subscription) error {
	capacity := t.bus.cfg.Memory.BufferSize
	lanes := make([]*lane, s.concurrency)
	for i := range lanes {
		lanes[i] = &lane{sub: s, sched: t.sched, capacity: int64(capacity), ctx: t.bus.baseCtx}
	}
	if s.tel != nil {
		s.addRelease(s.tel.ObserveQueueDepth(func() int64 {
			var n int64
			for _, l := range lanes {
				n += l.depth.Load()
			}
			return n
		}))
	}
	t.routesMu.Lock()
	t.lanes[s] = lanes
	t.rebuildLocked()
	t.routesMu.Unlock()
	return nil
}

// unsubscribe implements transport: new events stop coming at once; the
// events already accepted for the subscription are handled (within the
// shutdown timeout; what is left then moves to the other members of its
// group), and it returns once the in-flight ones have finished.
func (t *memoryTransport) unsubscribe(s *subscription) error {
	t.routesMu.Lock()
	lanes := t.lanes[s]
	delete(t.lanes, s)
	t.rebuildLocked()
	t.routesMu.Unlock()

	deadline := time.Now().Add(t.bus.cfg.ShutdownTimeout)
	var orphans []*Event
	for _, l := range lanes {
		orphans = append(orphans, l.stop(time.Until(deadline), true)...)
	}
	if len(orphans) == 0 {
		return nil
	}
	for _, g := range (*t.routes.Load())[s.topic] {
		if g.name != s.group {
			continue
		}
		for _, e := range orphans {
			g.pick(e.Key).pushOverflow(e)
		}
		return nil
	}
	t.bus.logger.Warn("eventstream: last member of a group left before its queue drained; queued events discarded",
		"topic", s.topic, "group", s.group, "events", len(orphans))
	return nil
}

func (t *memoryTransport) rebuildLocked() {
	old := *t.routes.Load()
	rt := routeTable{}
	for s, lanes := range t.lanes {
		var g *groupRoute
		for _, cand := range rt[s.topic] {
			if cand.name == s.group {
				g = cand
			}
		}
		if g == nil {
			g = &groupRoute{name: s.group, rr: new(atomic.Uint64)}
			for _, prev := range old[s.topic] {
				if prev.name == s.group {
					g.rr = prev.rr
				}
			}
			rt[s.topic] = append(rt[s.topic], g)
		}
		g.lanes = append(g.lanes, lanes...)
	}
	t.routes.Store(&rt)
}

// drain implements transport: it waits until every lane is empty and idle.
func (t *memoryTransport) drain(ctx context.Context) int {
	return waitDrained(ctx, time.Millisecond, func() int {
		t.routesMu.Lock()
		defer t.routesMu.Unlock()
		pending := 0
		for _, lanes := range t.lanes {
			for _, l := range lanes {
				pending += int(l.depth.Load())
			}
		}
		return pending
	})
}

// close implements transport. After a drain that finished, workers are
// idle and the pool is released with a wait, leaving no goroutine behind;
// after one that timed out, a stuck handler must not hold Close too, so
// the pool is released without one.
func (t *memoryTransport) close() error {
	t.routesMu.Lock()
	all := t.lanes
	t.lanes = map[*subscription][]*lane{}
	t.rebuildLocked()
	t.routesMu.Unlock()
	stuck := false
	for _, lanes := range all {
		for _, l := range lanes {
			l.stop(0, false)
			stuck = stuck || l.depth.Load() > 0
		}
	}
	if stuck {
		t.sched.pool.Release()
		return nil
	}
	return t.sched.pool.ReleaseTimeout(5 * time.Second)
}

// lane is a bounded FIFO drained by at most one worker at a time.
type lane struct {
	sub      *subscription
	sched    *scheduler
	ctx      context.Context
	capacity int64

	// depth counts queued plus in-hand events: the backpressure bound and
	// the queue-depth gauge.
	depth   atomic.Int64
	waiters atomic.Int32
	abandon atomic.Bool // the worker leaves the rest of the queue alone

	mu     sync.Mutex
	q      []*Event
	spare  []*Event
	busy   bool          // a worker owns the lane
	closed bool          // the subscription left; push refuses
	room   chan struct{} // closed when room frees up; nil without waiters
	idle   chan struct{} // closed when the worker leaves a stopped lane
}

// waitRoom blocks while the lane is full, until ctx is done.
func (l *lane) waitRoom(ctx context.Context) error {
	for l.depth.Load() >= l.capacity {
		l.mu.Lock()
		if l.depth.Load() < l.capacity || l.closed {
			l.mu.Unlock()
			return nil
		}
		if l.room == nil {
			l.room = make(chan struct{})
		}
		room := l.room
		l.waiters.Add(1)
		l.mu.Unlock()
		select {
		case <-room:
			l.waiters.Add(-1)
		case <-ctx.Done():
			l.waiters.Add(-1)
			return &QueueFullError{Topic: l.sub.topic, Group: l.sub.group, Err: ctx.Err()}
		}
	}
	return nil
}

// push appends e; false when the lane was stopped (its subscription left).
// Room is checked by waitRoom beforehand, so concurrent Emits may overshoot
// the capacity by at most their number.
func (l *lane) push(e *Event) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.depth.Add(1)
	l.q = append(l.q, e)
	start := !l.busy
	l.busy = true
	l.mu.Unlock()
	if start {
		l.sched.schedule(l)
	}
	return true
}

// pushOverflow appends without checking room: for events moved from a lane
// whose subscription left, which were already accepted.
func (l *lane) pushOverflow(e *Event) {
	if !l.push(e) {
		l.sub.bus.logger.Warn("eventstream: event discarded: its group's members all left",
			"topic", e.Topic, "event_id", e.ID)
	}
}

// run drains the lane on a pool worker until it is empty, or until other
// lanes wait for a worker and this one has had a fair share.
func (l *lane) run() (yield bool) {
	const fairShare = 256
	handled := 0
	for {
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
		batch := l.q
		l.q, l.spare = l.spare[:0], nil
		l.mu.Unlock()

		for i, e := range batch {
			if l.abandon.Load() {
				l.requeueFront(batch[i:])
				break
			}
			l.sub.deliver(l.ctx, e)
			batch[i] = nil
			l.depth.Add(-1)
			if l.waiters.Load() > 0 {
				l.wake()
			}
		}
		clear(batch)
		l.mu.Lock()
		l.spare = batch[:0]
		l.mu.Unlock()
		handled += len(batch)
		if handled >= fairShare && l.sched.starving() {
			// Stay busy: the scheduler queues the lane behind the waiting ones.
			return true
		}
	}
}

func (l *lane) requeueFront(rest []*Event) {
	l.mu.Lock()
	l.q = append(append(make([]*Event, 0, len(rest)+len(l.q)), rest...), l.q...)
	l.mu.Unlock()
}

func (l *lane) wake() {
	l.mu.Lock()
	if l.room != nil {
		close(l.room)
		l.room = nil
	}
	l.mu.Unlock()
}

// stop refuses further pushes, lets the worker drain the queue for up to
// drain, then has it leave the rest; with wait it returns only once the
// in-flight event has finished. It returns the events that never started.
func (l *lane) stop(drain time.Duration, wait bool) []*Event {
	l.mu.Lock()
	l.closed = true
	if l.room != nil {
		close(l.room) // waiting Emits route again
		l.room = nil
	}
	var idle chan struct{}
	if l.busy {
		l.idle = make(chan struct{})
		idle = l.idle
	}
	l.mu.Unlock()
	if idle != nil {
		timer := time.NewTimer(drain)
		select {
		case <-idle:
		case <-timer.C:
			l.abandon.Store(true)
			if wait {
				<-idle
			}
		}
		timer.Stop()
	}
	l.abandon.Store(true)
	l.mu.Lock()
	rest := l.q
	l.q = nil
	l.mu.Unlock()
	l.depth.Add(-int64(len(rest)))
	return rest
}

// scheduler runs busy lanes on the ants pool. It never lets Emit block on
// the pool: when every worker is taken, the lane waits in a FIFO that
// workers take from before they return to the pool.
type scheduler struct {
	pool     *ants.Pool
	capacity int

	mu      sync.Mutex
	active  int // workers this scheduler holds
	pending []*lane
	waiting atomic.Int32
}

func newScheduler(pc PoolConfig) (*scheduler, error) {
	pool, err := ants.NewPool(pc.Size,
		ants.WithExpiryDuration(pc.ExpiryDuration),
		ants.WithPreAlloc(pc.PreAlloc),
		ants.WithDisablePurge(false),
	)
	if err != nil {
		return nil, &ConfigError{Field: "Pool", Reason: err.Error()}
	}
	return &scheduler{pool: pool, capacity: pc.Size}, nil
}

func (s *scheduler) schedule(l *lane) {
	s.mu.Lock()
	if s.active >= s.capacity {
		s.pending = append(s.pending, l)
		s.waiting.Store(int32(len(s.pending)))
		s.mu.Unlock()
		return
	}
	s.active++
	s.mu.Unlock()
	if err := s.pool.Submit(func() { s.work(l) }); err != nil {
		// The pool was released (Close): nothing can run the lane anymore;
		// drain has already given up on it and counted its events.
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}
}

// work drains l, then any lanes waiting for a worker.
func (s *scheduler) work(l *lane) {
	for l != nil {
		yield := l.run()
		s.mu.Lock()
		if yield {
			s.pending = append(s.pending, l)
		}
		l = nil
		if len(s.pending) > 0 {
			l = s.pending[0]
			s.pending[0] = nil
			s.pending = s.pending[1:]
		} else {
			s.active--
		}
		s.waiting.Store(int32(len(s.pending)))
		s.mu.Unlock()
	}
}

func (s *scheduler) starving() bool { return s.waiting.Load() > 0 }

// stats reports running workers, capacity and lanes waiting for a worker.
func (s *scheduler) stats() (running, capacity, waiting int64) {
	return int64(s.pool.Running()), int64(s.pool.Cap()), int64(s.waiting.Load()) + int64(s.pool.Waiting())
}

// fnv1a hashes a key to a lane without allocating.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// poolStats feeds the eventstream.pool.* gauges.
func (t *memoryTransport) poolStats() (running, capacity, waiting int64) { return t.sched.stats() }
