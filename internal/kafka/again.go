package kafka

import (
	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/transport"
)

// park keeps a record whose retry (or hand-back) is due later at the head
// of its lane:
// the lane's later records wait, no worker does, and the partition's mark
// stays below the record, so no commit passes it. The record does not
// count as running meanwhile, so a revoke does not wait for its backoff;
// when the wait ends, the record runs again only if the partition is still
// the member's (else the group's next owner gets it, uncommitted).
func (c *consumer) park(it item, e *event.Event, again *transport.Again) {
	it.ps.pause()
	next := again.NextEvent(e) // a hand-back's copy, one Redelivery higher
	it.lane.Park(again.Delay, func(it item) {
		if c.abandon.Load() || !it.ps.begin(it.rec.Offset) {
			again.Abandon()
			return
		}
		c.deliverCtx(again.Next(c.handlerCtx(it.ps)), it, next, nil)
	}, func(item) { again.Abandon() })
}
