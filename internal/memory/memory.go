// Package memory is the in-process transport: it routes each event to one
// lane of every consumer group of its topic.
//
// A subscription has one lane per unit of concurrency. An event goes to one
// lane of each group (by key hash, else round robin), so a group's members
// share its events. A key picks a member (weighted by its lanes), then a lane
// of that member by the key alone, so within a member a key always meets the
// same lane, which keeps its order, whoever joins or leaves the group. Lanes
// are bounded: Emit waits for room in every target lane before it enqueues
// in any, so an Emit that gives up has reached no group.
package memory

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
)

// System is the messaging.system value of memory mode.
const System = "memory"

// Transport is memory mode's transport.Transport.
type Transport struct {
	h transport.Host

	// topics maps a topic to its routes; read on every Publish without a
	// lock. On and Off copy only their own topic's small group slice, so
	// their cost does not grow with the number of other subscriptions.
	topics sync.Map // string → *topicRoutes

	mu      sync.Mutex // serializes On, Off and Close
	members map[*transport.Sub]*member
	leaving map[*member]struct{} // left the routes, still holding events
	bg      sync.WaitGroup       // leaving members that finish in the background

	closing    atomic.Bool // Drain ended or gave up: Publish refuses
	closed     atomic.Bool // Close ran: leaving members stop waiting for stuck handlers
	publishing atomic.Int64
	// last is the routes of the topic published to last: most Publishes go
	// to the topic of the one before, and a string compare costs less than
	// hashing the topic into topics.
	last atomic.Pointer[topicRoutes]

	ret *retainer // nil unless NewRetaining turned retention on (retain.go)
}

type topicRoutes struct {
	name   string
	groups atomic.Pointer[[]*groupRoute]
	// removed: taken out of topics, so a pointer to it that Publish kept
	// (Transport.last) is stale.
	removed atomic.Bool
}

// groupRoute is a consumer group of one topic: its members and all their
// lanes.
type groupRoute struct {
	name    string
	members []*member
	lanes   []*lane
	rr      *atomic.Uint64 // shared across copies so round robin keeps going
}

type lane = lanes.Lane[*event.Event]

type member struct {
	t     *Transport
	sub   *transport.Sub
	lanes []*lane
	// ctx is the context its handlers run under: the bus's base context,
	// also cancelled when the member leaves with handlers still running
	// past the shutdown timeout, so that they can answer "not done".
	ctx    context.Context
	cancel context.CancelFunc

	cutMu sync.Mutex
	cut   []*event.Event // parked events whose wait ended as m left (again.go)
}

// FullError reports the group whose lane stayed full until Publish's context
// was done; the bus turns it into its QueueFullError.
type FullError struct {
	Topic, Group string
	Err          error
}

func (e *FullError) Error() string {
	return "queue of group " + e.Group + " stayed full: " + e.Err.Error()
}
func (e *FullError) Unwrap() error { return e.Err }

// New returns the transport.
func New(h transport.Host) *Transport {
	return &Transport{h: h, members: map[*transport.Sub]*member{}, leaving: map[*member]struct{}{}}
}

// System implements transport.Transport.
func (t *Transport) System() string { return System }

var seed = maphash.MakeSeed()

// pick returns the lane of g for an event of key. A key's low hash bits pick
// the member, its high bits the lane within the member: a change of
// membership may move a key to another member, never to another lane of the
// same member, where it could run beside its own earlier events.
func (g *groupRoute) pick(key string) *lane {
	n := uint64(len(g.lanes))
	if n == 1 {
		return g.lanes[0]
	}
	if key == "" {
		return g.lanes[g.rr.Add(1)%n]
	}
	h := maphash.String(seed, key)
	m := g.members[0]
	if len(g.members) > 1 {
		i := (h & math.MaxUint32) % n
		for _, m = range g.members {
			if i < uint64(len(m.lanes)) {
				break
			}
			i -= uint64(len(m.lanes))
		}
	}
	return m.lanes[(h>>32)%uint64(len(m.lanes))]
}

func (t *Transport) groups(topic string) []*groupRoute {
	if tr := t.last.Load(); tr != nil && tr.name == topic && !tr.removed.Load() {
		return *tr.groups.Load()
	}
	v, ok := t.topics.Load(topic)
	if !ok {
		return nil
	}
	tr := v.(*topicRoutes)
	// Kept even if it is removed meanwhile: removed is set first, so the
	// next Publish looks in topics again.
	t.last.Store(tr)
	return *tr.groups.Load()
}

// Publish implements transport.Transport. It is all-or-nothing while the
// group membership holds still: it first waits until every target lane has
// room (unless o.Overflow), then appends to all. Up to eight groups are
// served without allocating.
func (t *Transport) Publish(ctx context.Context, e *event.Event, o transport.PublishOptions) error {
	t.publishing.Add(1)
	defer t.publishing.Add(-1)
	if t.closing.Load() {
		return transport.ErrClosed
	}
	if t.ret != nil {
		return t.publishRetained(ctx, e, o)
	}
	var buf [8]*lane
	targets := buf[:0]
	groups := t.groups(e.Topic)
	for _, g := range groups {
		targets = append(targets, g.pick(e.Key))
	}
	var missed []string
	if !o.Overflow {
		for i, l := range targets {
			if err := l.WaitRoom(ctx); err != nil {
				if err == lanes.ErrStopped {
					continue // its member left: push fails and reroutes
				}
				return &FullError{Topic: e.Topic, Group: groups[i].name, Err: err}
			}
		}
	}
	for i, l := range targets {
		if !l.Push(e) {
			missed = append(missed, groups[i].name)
		}
	}
	if missed != nil {
		if err := t.reroute(ctx, e, missed, o.Overflow); err != nil {
			return err
		}
	}
	if o.Done != nil {
		o.Done(nil)
	}
	return nil
}

// reroute serves the groups whose lane stopped between routing and push
// (its member left) through their remaining members.
func (t *Transport) reroute(ctx context.Context, e *event.Event, names []string, overflow bool) error {
	for len(names) > 0 {
		if t.closing.Load() {
			return transport.ErrClosed
		}
		var still []string
		for _, name := range names {
			g := t.group(e.Topic, name)
			if g == nil {
				continue // the group is gone: nobody left to serve
			}
			l := g.pick(e.Key)
			if !overflow {
				if err := l.WaitRoom(ctx); err != nil && err != lanes.ErrStopped {
					return &FullError{Topic: e.Topic, Group: name, Err: err}
				}
			}
			if !l.Push(e) {
				still = append(still, name)
			}
		}
		names = still
	}
	return nil
}

// Subscribe implements transport.Transport: the subscription is live once
// its lanes are in the topic's routes.
func (t *Transport) Subscribe(s *transport.Sub) error {
	m := &member{t: t, sub: s, lanes: make([]*lane, s.Concurrency)}
	m.ctx, m.cancel = context.WithCancel(t.h.BaseCtx)
	for i := range m.lanes {
		m.lanes[i] = m.newLane(t.h)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		m.cancel()
		return transport.ErrClosed
	}
	t.members[s] = m
	v, _ := t.topics.LoadOrStore(s.Topic, newTopicRoutes(s.Topic))
	tr := v.(*topicRoutes)
	old := *tr.groups.Load()
	groups := make([]*groupRoute, 0, len(old)+1)
	found := false
	for _, g := range old {
		if g.name == s.Group {
			g = &groupRoute{name: g.name, rr: g.rr,
				members: append(g.members[:len(g.members):len(g.members)], m),
				lanes:   append(g.lanes[:len(g.lanes):len(g.lanes)], m.lanes...)}
			found = true
		}
		groups = append(groups, g)
	}
	if !found {
		g := &groupRoute{name: s.Group, rr: new(atomic.Uint64), members: []*member{m}, lanes: m.lanes}
		groups = append(groups, g)
		if t.ret != nil {
			r := t.log(s.Topic)
			r.mu.Lock()
			defer r.mu.Unlock() // after the route is stored: see publishRetained
			t.replayLocked(r, s, g)
		}
	}
	tr.groups.Store(&groups)
	return nil
}

func newTopicRoutes(name string) *topicRoutes {
	tr := &topicRoutes{name: name}
	tr.groups.Store(new([]*groupRoute))
	return tr
}

// removeLocked takes m's lanes out of its topic's routes.
func (t *Transport) removeLocked(m *member) {
	s := m.sub
	delete(t.members, s)
	v, ok := t.topics.Load(s.Topic)
	if !ok {
		return
	}
	tr := v.(*topicRoutes)
	old := *tr.groups.Load()
	groups := make([]*groupRoute, 0, len(old))
	for _, g := range old {
		if g.name == s.Group {
			ng := &groupRoute{name: g.name, rr: g.rr}
			for _, x := range g.members {
				if x != m {
					ng.members = append(ng.members, x)
					ng.lanes = append(ng.lanes, x.lanes...)
				}
			}
			if len(ng.members) == 0 {
				t.groupLeft(s)
				continue
			}
			g = ng
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		tr.removed.Store(true)
		t.topics.Delete(s.Topic) // bounded memory: a topic nobody hears costs nothing
	}
	tr.groups.Store(&groups)
}

// Unsubscribe implements transport.Transport: new events stop coming at
// once; those accepted for the subscription are handled within the
// shutdown timeout, and what is left then moves to the group's other
// members, before newer events of its keys.
//
// Called from outside the bus's handlers, it returns once the subscription
// is done: its queue handled or handed over and its handlers returned.
// Called from a handler of the bus, it cannot wait for the queue (every
// worker may be held by handlers like the caller): it waits for the
// subscription's handlers in flight, all but the caller when it is one of
// them, and the subscription finishes its queue in the background, with no
// deadline when no other member could take it over. Close drains a leaving
// subscription as any other and counts what it cuts off.
func (t *Transport) Unsubscribe(s *transport.Sub) error {
	t.mu.Lock()
	m := t.members[s]
	if m != nil {
		t.removeLocked(m)
		t.leaving[m] = struct{}{}
		t.bg.Add(1)
	}
	t.mu.Unlock()
	if m == nil {
		if s.Left != nil {
			s.Left() // Close took it, or it never subscribed
		}
		return nil
	}
	for _, l := range m.lanes {
		l.Stop()
	}
	if !lanes.InHandler() {
		defer t.bg.Done()
		return t.leave(m, false)
	}
	var own *lane
	for _, l := range m.lanes {
		if l.CalledFromHandler() {
			own = l
		}
	}
	go func() {
		defer t.bg.Done()
		_ = t.leave(m, true)
	}()
	// The handlers in flight are running on workers of their own, so they
	// finish; the caller's is the one this goroutine runs.
	lanes.PollUntil(t.h.BaseCtx, time.Millisecond, func() int {
		n := 0
		for _, l := range m.lanes {
			if l != own && l.Handling() {
				n++
			}
		}
		return n
	})
	return nil
}

// leave finishes a member that left the routes: it lets its lanes run
// what they hold until the shutdown timeout, hands the rest to the group's
// other members (or, when none is left: in the background, keeps running
// it; called by Off from outside, discards it and says so), waits for the
// events in hand and tells the bus the subscription has ended.
func (t *Transport) leave(m *member, background bool) error {
	s := m.sub
	defer func() {
		t.mu.Lock()
		delete(t.leaving, m)
		t.mu.Unlock()
		m.cancel()
		if s.Left != nil {
			s.Left()
		}
	}()
	deadline := time.Now().Add(t.h.ShutdownTimeout)
	lost := 0
	for {
		if depth(m.lanes) == 0 || t.closing.Load() {
			break
		}
		if time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			continue
		}
		t.mu.Lock()
		g := t.group(s.Topic, s.Group)
		if t.closing.Load() || g == nil && background {
			// Closing: Drain counts what is left. No other member: the
			// subscription keeps running its queue, as nobody else can.
			t.mu.Unlock()
			time.Sleep(time.Millisecond)
			continue
		}
		// Under mu, so that Drain sees each event either here or at its
		// new member, never in between.
		lost = t.handOverLocked(m, g)
		t.mu.Unlock()
		// The handlers still running had their time: their context ends,
		// and one that answers with its error hands its event back
		// (again.go), to the member that took the queue over.
		m.cancel()
		break
	}
	// The events in hand finish whatever the deadline (a parked retry
	// included: it is in hand until its last attempt).
	for depth(m.lanes) > 0 && !t.closed.Load() {
		time.Sleep(time.Millisecond)
	}
	if late := m.takeCut(); len(late) > 0 && !t.closing.Load() {
		// Parked by a handler that was in hand at the hand-over.
		t.mu.Lock()
		if g := t.group(s.Topic, s.Group); g != nil {
			lost += t.pushFrontLocked(g, late)
		} else {
			lost += t.keepForReturn(s, late)
		}
		t.mu.Unlock()
	}
	if lost > 0 {
		t.h.Logger.Warn("eventstream: the last member of a group left before its queue drained; events discarded",
			slog.String("topic", s.Topic), slog.String("group", s.Group), slog.Int("events", lost))
		return &transport.UnhandledError{Unhandled: lost}
	}
	return nil
}

// handOverLocked moves the events of m's lanes that have not started to the
// lanes of g that their keys pick, before newer events there, and returns
// how many had nowhere to go (g is nil: m was the group's last member).
func (t *Transport) handOverLocked(m *member, g *groupRoute) int {
	var byLane map[*lane][]*event.Event
	lost := 0
	for _, l := range m.lanes {
		orphans := l.Abandon()
		// A parked retry (again.go) goes first: it was the lane's head.
		orphans = append(m.takeCut(), orphans...)
		if g == nil {
			lost += t.keepForReturn(m.sub, orphans) // retain.go
			continue
		}
		if byLane == nil {
			byLane = map[*lane][]*event.Event{}
		}
		// A key's events all come from one lane of m, in order, so
		// appending lane after lane keeps every key's order.
		for _, e := range orphans {
			to := g.pick(e.Key)
			byLane[to] = append(byLane[to], e)
		}
	}
	for to, es := range byLane {
		if !to.PushFront(es) {
			lost += len(es) // stopped under mu: only Drain stops a member's lanes
		}
	}
	return lost
}

// pushFrontLocked hands es, in order, to the lanes of g their keys pick,
// before newer events there, and returns how many had nowhere to go.
func (t *Transport) pushFrontLocked(g *groupRoute, es []*event.Event) int {
	if g == nil {
		return len(es)
	}
	byLane := map[*lane][]*event.Event{}
	for _, e := range es {
		to := g.pick(e.Key)
		byLane[to] = append(byLane[to], e)
	}
	lost := 0
	for to, es := range byLane {
		if !to.PushFront(es) {
			lost += len(es)
		}
	}
	return lost
}

// depth counts the events queued or in hand in ls.
func depth(ls []*lane) int64 {
	var n int64
	for _, l := range ls {
		n += l.Depth()
	}
	return n
}

// group returns the route of group name on topic; nil when it has no member.
func (t *Transport) group(topic, name string) *groupRoute {
	for _, g := range t.groups(topic) {
		if g.name == name {
			return g
		}
	}
	return nil
}

// QueueDepth implements transport.QueueDepther.
func (t *Transport) QueueDepth(s *transport.Sub) int64 {
	t.mu.Lock()
	m := t.members[s]
	if m == nil {
		for x := range t.leaving { // still finishing its queue
			if x.sub == s {
				m = x
			}
		}
	}
	t.mu.Unlock()
	if m == nil {
		return 0
	}
	var n int64
	for _, l := range m.lanes {
		n += l.Depth()
	}
	return n
}

// Drain implements transport.Transport: it waits until every lane is
// empty, those of members still leaving included, and every Publish under
// way has returned (the bus refuses new Emits already; dead letters and
// Emits from handlers are still accepted, they are part of the work being
// drained). At ctx's end it stops every lane, so a Publish still waiting
// for room fails with ErrClosed, and reports the events queued or in hand.
func (t *Transport) Drain(ctx context.Context) int {
	pending := func() int {
		t.mu.Lock()
		defer t.mu.Unlock()
		n := int(t.publishing.Load())
		t.eachLaneLocked(func(l *lane) { n += int(l.Depth()) })
		return n
	}
	if lanes.PollUntil(ctx, time.Millisecond, pending) == 0 {
		t.closing.Store(true)
		return 0
	}
	t.closing.Store(true)
	t.mu.Lock()
	unhandled := 0
	t.eachLaneLocked(func(l *lane) {
		l.Stop()
		unhandled += int(l.Depth())
		l.Abandon()
	})
	t.mu.Unlock()
	return unhandled
}

// eachLaneLocked calls f with every lane of the members and of those still
// leaving.
func (t *Transport) eachLaneLocked(f func(*lane)) {
	for _, m := range t.members {
		for _, l := range m.lanes {
			f(l)
		}
	}
	for m := range t.leaving {
		for _, l := range m.lanes {
			f(l)
		}
	}
}

// Close implements transport.Transport: it drops the routes and waits, up
// to ctx's end, for leaving members to finish. The bus releases the
// scheduler's pool afterwards.
func (t *Transport) Close(ctx context.Context) error {
	t.closing.Store(true)
	t.mu.Lock()
	t.eachLaneLocked(func(l *lane) {
		l.Stop()
		l.Abandon()
	})
	for _, m := range t.members {
		t.removeLocked(m)
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	// A handler that ignores its cancelled context no longer holds a
	// leaving member's goroutine.
	t.closed.Store(true)
	<-done
	return nil
}

// ReportAge implements transport.AgeReporter: per topic and group, the
// oldest event at the head of the group's lanes (in hand or next to start).
func (t *Transport) ReportAge(now time.Time, observe func(topic, group string, age time.Duration)) {
	type key struct{ topic, group string }
	ages := map[key]time.Duration{}
	add := func(m *member) {
		k := key{m.sub.Topic, m.sub.Group}
		age := ages[k]
		for _, l := range m.lanes {
			if e, ok := l.Head(); ok && !e.Time.IsZero() {
				age = max(age, now.Sub(e.Time))
			}
		}
		ages[k] = age
	}
	t.mu.Lock()
	for _, m := range t.members {
		add(m)
	}
	for m := range t.leaving { // its events are still the group's
		add(m)
	}
	t.mu.Unlock()
	for k, age := range ages {
		observe(k.topic, k.group, age)
	}
}
