// Package memory is the in-process transport: it routes each event to one
// lane of every consumer group of its topic.
//
// A subscription has one lane per unit of concurrency. An event goes to one
// lane of each group (by key hash, else round robin), so a group's members
// share its events and a key always meets the same lane, which keeps its
// order. Lanes are bounded: Emit waits for room in every target lane before
// it enqueues in any, so an Emit that gives up has reached no group.
package memory

import (
	"context"
	"hash/maphash"
	"log/slog"
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

	closing    atomic.Bool // Drain ended or gave up: Publish refuses
	publishing atomic.Int64

	retention Retention // off unless NewRetaining turned it on
	retained  sync.Map  // string → *retained, with retention on
}

type topicRoutes struct {
	groups atomic.Pointer[[]*groupRoute]
}

// groupRoute is a consumer group of one topic: the lanes of its members.
type groupRoute struct {
	name  string
	lanes []*lane
	rr    *atomic.Uint64 // shared across copies so round robin keeps going
}

type lane = lanes.Lane[*event.Event]

type member struct {
	sub   *transport.Sub
	lanes []*lane
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
	return &Transport{h: h, members: map[*transport.Sub]*member{}}
}

// System implements transport.Transport.
func (t *Transport) System() string { return System }

var seed = maphash.MakeSeed()

func (g *groupRoute) pick(key string) *lane {
	n := uint64(len(g.lanes))
	if n == 1 {
		return g.lanes[0]
	}
	if key != "" {
		return g.lanes[maphash.String(seed, key)%n]
	}
	return g.lanes[g.rr.Add(1)%n]
}

func (t *Transport) groups(topic string) []*groupRoute {
	v, ok := t.topics.Load(topic)
	if !ok {
		return nil
	}
	return *v.(*topicRoutes).groups.Load()
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
	if t.retention.Events > 0 {
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
	m := &member{sub: s, lanes: make([]*lane, s.Concurrency)}
	ctx := t.h.BaseCtx
	for i := range m.lanes {
		m.lanes[i] = lanes.New(t.h.Sched, t.h.QueueSize,
			func(e *event.Event) { _ = s.Deliver(ctx, e, nil) },
			func(e *event.Event) { _ = s.Deliver(ctx, e, transport.ErrGoexit) })
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		return transport.ErrClosed
	}
	t.members[s] = m
	v, _ := t.topics.LoadOrStore(s.Topic, newTopicRoutes())
	tr := v.(*topicRoutes)
	old := *tr.groups.Load()
	groups := make([]*groupRoute, 0, len(old)+1)
	found := false
	for _, g := range old {
		if g.name == s.Group {
			g = &groupRoute{name: g.name, rr: g.rr, lanes: append(g.lanes[:len(g.lanes):len(g.lanes)], m.lanes...)}
			found = true
		}
		groups = append(groups, g)
	}
	if !found {
		g := &groupRoute{name: s.Group, rr: new(atomic.Uint64), lanes: m.lanes}
		groups = append(groups, g)
		if t.retention.Events > 0 {
			r := t.log(s.Topic)
			r.mu.Lock()
			defer r.mu.Unlock() // after the route is stored: see publishRetained
			t.replayLocked(r, s, g)
		}
	}
	tr.groups.Store(&groups)
	return nil
}

func newTopicRoutes() *topicRoutes {
	tr := &topicRoutes{}
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
			kept := make([]*lane, 0, len(g.lanes))
			for _, l := range g.lanes {
				if !contains(m.lanes, l) {
					kept = append(kept, l)
				}
			}
			if len(kept) == 0 {
				t.groupLeft(s)
				continue
			}
			g = &groupRoute{name: g.name, rr: g.rr, lanes: kept}
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		t.topics.Delete(s.Topic) // bounded memory: a topic nobody hears costs nothing
	}
	tr.groups.Store(&groups)
}

func contains(ls []*lane, l *lane) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// Unsubscribe implements transport.Transport: new events stop coming at
// once; those accepted for the subscription are handled within the
// shutdown timeout (what is left then moves to the group's other members),
// and it returns once the in-flight handlers have finished — all but the
// caller's own when it is called from one of the subscription's handlers.
func (t *Transport) Unsubscribe(s *transport.Sub) error {
	t.mu.Lock()
	m := t.members[s]
	if m != nil {
		t.removeLocked(m)
	}
	t.mu.Unlock()
	if m == nil {
		return nil
	}
	for _, l := range m.lanes {
		l.Stop()
	}
	allowance := 0
	if lanes.InHandler() {
		allowance = 1
	}
	deadline := time.Now().Add(t.h.ShutdownTimeout)
	// Queued events are handled until the deadline.
	for busyLanes(m.lanes, false) > allowance && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var orphans []*event.Event
	for _, l := range m.lanes {
		orphans = append(orphans, l.Abandon()...)
	}
	// In-flight handlers finish whatever the deadline.
	for busyLanes(m.lanes, true) > allowance {
		time.Sleep(time.Millisecond)
	}
	if len(orphans) == 0 {
		return nil
	}
	for i, e := range orphans {
		if !t.pushToGroup(s, e) {
			t.h.Logger.Warn("eventstream: the last member of a group left before its queue drained; events discarded",
				slog.String("topic", s.Topic), slog.String("group", s.Group), slog.Int("events", len(orphans)-i))
			return nil
		}
	}
	return nil
}

// busyLanes counts lanes with events left (handling: only those running a
// handler).
func busyLanes(ls []*lane, handling bool) int {
	n := 0
	for _, l := range ls {
		if handling && l.Handling() || !handling && l.Depth() > 0 {
			n++
		}
	}
	return n
}

// pushToGroup hands an already accepted event to another member of s's
// group; false when none is left.
func (t *Transport) pushToGroup(s *transport.Sub, e *event.Event) bool {
	for {
		g := t.group(s.Topic, s.Group)
		if g == nil {
			return false
		}
		if g.pick(e.Key).Push(e) {
			return true
		}
	}
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
// empty and every Publish under way has returned (the bus refuses new Emits
// already; dead letters and Emits from handlers are still accepted, they
// are part of the work being drained). At ctx's end it stops every lane, so
// a Publish still waiting for room fails with ErrClosed, and reports the
// events queued or in hand.
func (t *Transport) Drain(ctx context.Context) int {
	pending := func() int {
		t.mu.Lock()
		defer t.mu.Unlock()
		n := int(t.publishing.Load())
		for _, m := range t.members {
			for _, l := range m.lanes {
				n += int(l.Depth())
			}
		}
		return n
	}
	if lanes.PollUntil(ctx, time.Millisecond, pending) == 0 {
		t.closing.Store(true)
		return 0
	}
	t.closing.Store(true)
	t.mu.Lock()
	unhandled := 0
	for _, m := range t.members {
		for _, l := range m.lanes {
			l.Stop()
			unhandled += int(l.Depth())
			l.Abandon()
		}
	}
	t.mu.Unlock()
	return unhandled
}

// Close implements transport.Transport: it drops the routes. The bus
// releases the scheduler's pool afterwards.
func (t *Transport) Close(context.Context) error {
	t.closing.Store(true)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.members {
		for _, l := range m.lanes {
			l.Stop()
			l.Abandon()
		}
		t.removeLocked(m)
	}
	return nil
}

// ReportAge implements transport.AgeReporter: per topic and group, the
// oldest event at the head of the group's lanes (in hand or next to start).
func (t *Transport) ReportAge(now time.Time, observe func(topic, group string, age time.Duration)) {
	type key struct{ topic, group string }
	ages := map[key]time.Duration{}
	t.mu.Lock()
	for s, m := range t.members {
		k := key{s.Topic, s.Group}
		age := ages[k]
		for _, l := range m.lanes {
			if e, ok := l.Head(); ok && !e.Time.IsZero() {
				age = max(age, now.Sub(e.Time))
			}
		}
		ages[k] = age
	}
	t.mu.Unlock()
	for k, age := range ages {
		observe(k.topic, k.group, age)
	}
}
