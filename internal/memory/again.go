package memory

import (
	"context"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
)

// newLane returns one lane of m: it delivers each event to m's
// subscription and parks the event when the bus asks for it again later.
func (m *member) newLane(h transport.Host) *lane {
	var l *lane
	l = lanes.New(h.Sched, h.QueueSize,
		func(e *event.Event) { m.deliver(l, m.ctx, m.ctx, e, nil) },
		func(e *event.Event) { m.deliver(l, m.ctx, m.ctx, e, transport.ErrGoexit) })
	return l
}

// deliver runs one delivery of e. When the bus answers Again, e keeps the
// head of its lane and the worker goes back to the pool until the delay is
// over; if the member leaves meanwhile, e goes with the events the member
// hands to its group (Off) or is counted by Drain (Close).
func (m *member) deliver(l *lane, base, ctx context.Context, e *event.Event, failure error) {
	err := m.sub.Deliver(ctx, e, failure)
	if err == nil {
		return
	}
	// A type assertion, not errors.As: the bus returns Again as it is, and
	// errors.As would move a pointer to the heap on every delivery.
	again, ok := err.(*transport.Again)
	if !ok {
		return
	}
	next := again.NextEvent(e)
	if again.HandBack && again.Delay <= 0 && next.Key == "" && m.t.handToOther(m, next) {
		again.Abandon() // its delivery here ends; another begins there
		return
	}
	l.Park(again.Delay,
		func(*event.Event) { m.deliver(l, base, again.Next(base), next, nil) },
		func(e *event.Event) {
			again.Abandon()
			m.cutMu.Lock()
			m.cut = append(m.cut, e)
			m.cutMu.Unlock()
		})
}

// handToOther gives an event its handler handed back, and that has no key
// (so no order to keep), to another member of m's group, before newer
// events there: false when m is the group's only member.
func (t *Transport) handToOther(m *member, e *event.Event) bool {
	g := t.group(m.sub.Topic, m.sub.Group)
	if g == nil {
		return false
	}
	for _, o := range g.members {
		if o == m {
			continue
		}
		if l := o.lanes[g.rr.Add(1)%uint64(len(o.lanes))]; l.PushFront([]*event.Event{e}) {
			return true
		}
	}
	return false
}

// takeCut returns the parked events whose wait ended as the member left.
func (m *member) takeCut() []*event.Event {
	m.cutMu.Lock()
	defer m.cutMu.Unlock()
	cut := m.cut
	m.cut = nil
	return cut
}
