package memory

import (
	"context"
	"sync"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
)

// Retention keeps the last events of each topic so that a consumer group
// that joins later starts with them, as a Kafka group with InitialOffset
// earliest reads the log. A zero Retention keeps nothing.
type Retention struct {
	// Events bounds the events kept per topic (the oldest go first); 0
	// turns retention off.
	Events int
	// Age, when positive, also drops events older than this.
	Age time.Duration
}

// retained is the log of one topic and where each named group stands in
// it. Its mutex also orders Publish's push to the groups' lanes against a
// new group's replay, so a joining group sees every event exactly once, in
// order: an event is either in the log it replays or pushed to its lanes
// afterwards.
type retained struct {
	mu      sync.Mutex
	ring    []retainedEvent // capacity Events
	head, n int
	next    uint64 // sequence number of the next event

	// left is, per named group whose last member left, the sequence
	// number of the first event it did not get: when it comes back it
	// resumes there (what is still kept), as a Kafka group resumes at its
	// committed offset.
	left map[string]uint64
}

type retainedEvent struct {
	seq uint64
	at  time.Time
	e   *event.Event
}

func newRetained(events int) *retained {
	return &retained{ring: make([]retainedEvent, events), left: map[string]uint64{}}
}

// appendLocked keeps e, dropping the oldest when full and those past age.
func (r *retained) appendLocked(e *event.Event, age time.Duration, now time.Time) {
	if r.n == len(r.ring) {
		r.dropOldestLocked()
	}
	r.ring[(r.head+r.n)%len(r.ring)] = retainedEvent{seq: r.next, at: now, e: e}
	r.n++
	r.next++
	r.expireLocked(age, now)
}

func (r *retained) dropOldestLocked() {
	r.ring[r.head] = retainedEvent{}
	r.head = (r.head + 1) % len(r.ring)
	r.n--
}

func (r *retained) expireLocked(age time.Duration, now time.Time) {
	if age <= 0 {
		return
	}
	for r.n > 0 && now.Sub(r.ring[r.head].at) > age {
		r.dropOldestLocked()
	}
}

// sinceLocked returns the kept events from sequence number from on,
// oldest first.
func (r *retained) sinceLocked(from uint64, age time.Duration, now time.Time) []*event.Event {
	r.expireLocked(age, now)
	var out []*event.Event
	for i := range r.n {
		re := r.ring[(r.head+i)%len(r.ring)]
		if re.seq >= from {
			out = append(out, re.e)
		}
	}
	return out
}

// retainer is a transport's retention: what to keep, and each topic's log.
// A transport without retention has none, so Publish pays one nil check.
type retainer struct {
	Retention
	logs sync.Map // string → *retained
}

// NewRetaining returns the transport keeping, per topic, what r says.
func NewRetaining(h transport.Host, r Retention) *Transport {
	t := New(h)
	if r.Events > 0 {
		t.ret = &retainer{Retention: r}
	}
	return t
}

// log returns topic's retained log, creating it.
func (t *Transport) log(topic string) *retained {
	if v, ok := t.ret.logs.Load(topic); ok {
		return v.(*retained)
	}
	v, _ := t.ret.logs.LoadOrStore(topic, newRetained(t.ret.Events))
	return v.(*retained)
}

// publishRetained is Publish with retention on. It waits for room as
// Publish does, then, under the topic log's lock, pushes e to every group
// as it is now (a group that joined while it waited gets it without
// waiting) and keeps it: a group joining later finds it in the log, one
// that joined earlier got it pushed, none both.
func (t *Transport) publishRetained(ctx context.Context, e *event.Event, o transport.PublishOptions) error {
	picked := map[string]*lane{}
	for _, g := range t.groups(e.Topic) {
		l := g.pick(e.Key)
		picked[g.name] = l
		if o.Overflow {
			continue
		}
		if err := l.WaitRoom(ctx); err != nil && err != lanes.ErrStopped {
			return &FullError{Topic: e.Topic, Group: g.name, Err: err}
		}
	}
	r := t.log(e.Topic)
	r.mu.Lock()
	var missed []string
	for _, g := range t.groups(e.Topic) {
		l := picked[g.name]
		if l == nil {
			l = g.pick(e.Key)
		}
		if !l.Push(e) {
			missed = append(missed, g.name)
		}
	}
	if missed != nil {
		if err := t.reroute(ctx, e, missed, true); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	r.appendLocked(e, t.ret.Age, time.Now())
	r.mu.Unlock()
	if o.Done != nil {
		o.Done(nil)
	}
	return nil
}

// replayLocked pushes to the lanes of g, a group joining topic s.Topic
// (they are not routed yet), the kept events it has not had: all of them
// for a group new to the topic, those since it left for one coming back.
// The caller holds t.mu and r.mu and routes g before unlocking r.mu.
func (t *Transport) replayLocked(r *retained, s *transport.Sub, g *groupRoute) {
	from := uint64(0)
	if pos, ok := r.left[s.Group]; ok {
		from = pos
		delete(r.left, s.Group)
	}
	for _, e := range r.sinceLocked(from, t.ret.Age, time.Now()) {
		g.pick(e.Key).Push(e)
	}
}

// groupLeft records where the named group of s stands in its topic's log
// as its last member leaves, so that it resumes there.
func (t *Transport) groupLeft(s *transport.Sub) {
	if t.ret == nil || s.Private {
		return
	}
	r := t.log(s.Topic)
	r.mu.Lock()
	r.left[s.Group] = r.next
	r.mu.Unlock()
}

// keepForReturn takes back events that the last member of s's group left
// without handling them: with retention on, those still kept are not lost —
// the group resumes at the oldest of them when it comes back, as a Kafka
// group resumes at its last commit (what it handled after them comes again:
// at least once). It returns how many it could not keep. The caller holds
// t.mu.
func (t *Transport) keepForReturn(s *transport.Sub, es []*event.Event) (lost int) {
	if t.ret == nil || s.Private || len(es) == 0 {
		return len(es)
	}
	r := t.log(s.Topic)
	r.mu.Lock()
	defer r.mu.Unlock()
	seqs := make(map[*event.Event]uint64, r.n)
	for i := range r.n {
		re := r.ring[(r.head+i)%len(r.ring)]
		seqs[re.e] = re.seq
	}
	from, ok := r.left[s.Group]
	if !ok {
		from = r.next
	}
	for _, e := range es {
		seq, kept := seqs[e]
		if !kept {
			lost++
			continue
		}
		from = min(from, seq)
	}
	r.left[s.Group] = from
	return lost
}
