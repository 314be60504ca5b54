package eventmeta

import (
	"context"
	"sync/atomic"
)

// CauseKey is the context key of the event a handler's context belongs to
// (an *event.Event): an Emit made with that context is caused by it.
type CauseKey struct{}

// Handling is the context the first delivery of an event runs under: the
// context of the subscription that claimed it, with the event as the value
// of CauseKey. It lives inside the event, so that the most common delivery
// — an event emitted and handled by one bus, one group — costs no
// allocation for it; Bind prepares it before the event is published, and
// only the delivery that claims it writes it afterwards.
type Handling struct {
	context.Context
	event   any
	claimed uint32 // atomic: a delivery took it (Claim)
}

// Value returns the event for CauseKey, else the base context's value.
func (h *Handling) Value(key any) any {
	if key == (CauseKey{}) {
		return h.event
	}
	return h.Context.Value(key)
}

// The accessors installed by package event, which alone reaches the field.
var (
	handlingOf  func(e any) *Handling
	redelivered func(e any) any
)

// InstallHandling is called once, by package event: get returns an
// event's handling field; copy returns a copy of an event, one Redelivery
// higher, whose handling is unbound (it never reads the original's, which
// another group's delivery may be claiming).
func InstallHandling(get func(e any) *Handling, copy func(e any) any) {
	handlingOf, redelivered = get, copy
}

// Bind makes e's handling context base (the bus's) with e as the cause.
// Call it before e is published.
func Bind(e any, base context.Context) {
	h := handlingOf(e)
	h.Context, h.event = base, e
	atomic.StoreUint32(&h.claimed, 0)
}

// Claim returns e's handling context, now running under ctx, to the first
// delivery of e that asks, when Bind bound e to base; nil to every other
// delivery (another group's, a retry's) and for an event bound elsewhere,
// which then build their own. Each group's handlers need a context of
// their own — a subscription that leaves cancels its handlers' — so only
// one of them can have the event's.
func Claim(e any, base, ctx context.Context) *Handling {
	h := handlingOf(e)
	if !atomic.CompareAndSwapUint32(&h.claimed, 0, 1) {
		return nil
	}
	// Both sides are the bus's base context or nil; comparing them never
	// meets an uncomparable dynamic type.
	if h.Context == nil || h.Context != base {
		return nil
	}
	h.Context = ctx
	return h
}

// Redelivered returns a copy of e (an *event.Event) to deliver again, its
// Redelivery one higher.
func Redelivered(e any) any { return redelivered(e) }
