package kafka

import "context"

// The contexts handlers run under. Each assigned partition has one, a
// child of its member's, itself a child of the bus's base context: a
// revoke cancels the partition's once its handlers had the shutdown
// timeout to finish, and Off cancels the member's once its own timeout ran
// out. A handler that then answers with its context's error leaves its
// record uncommitted, for the partition's next owner (the bus hands it
// back; park gives it up, as the partition is no longer the member's). One
// context per partition and member, made at assignment, never per record.

// newPart returns the state of partition p, newly assigned.
func (c *consumer) newPart(p int32) *partState {
	ps := newPartState(p)
	ps.ctx, ps.cancel = context.WithCancel(c.handlers)
	return ps
}

// handlerCtx is the context of the handlers of ps's records.
func (c *consumer) handlerCtx(ps *partState) context.Context {
	if ps.ctx == nil {
		return c.t.host.BaseCtx
	}
	return ps.ctx
}

// endHandlers cancels the context of ps's handlers still running.
func (ps *partState) endHandlers() {
	if ps.cancel != nil {
		ps.cancel()
	}
}
