package eventmeta

import "context"

// CauseKey is the context key of the event a handler's context belongs to
// (an *event.Event): an Emit made with that context is caused by it.
type CauseKey struct{}

// Handling is the context the handlers of an event run under: the bus's
// base context, with the event as the value of CauseKey. It lives inside
// the event, so that the most common delivery — an event emitted and
// handled by one bus — costs no allocation for it; Bind fills it before
// the event is published, and it is read-only afterwards.
type Handling struct {
	context.Context
	event any
}

// Value returns the event for CauseKey, else the base context's value.
func (h *Handling) Value(key any) any {
	if key == (CauseKey{}) {
		return h.event
	}
	return h.Context.Value(key)
}

// handlingOf is installed by package event, which alone reaches the field.
var handlingOf func(e any) *Handling

// InstallHandling is called once, by package event.
func InstallHandling(get func(e any) *Handling) { handlingOf = get }

// Bind makes e's handling context base with e as the cause. Call it before
// e is published.
func Bind(e any, base context.Context) {
	h := handlingOf(e)
	h.Context, h.event = base, e
}

// HandlingOf returns the handling context Bind made for e over base, or
// nil when e was bound to no base or another one.
func HandlingOf(e any, base context.Context) *Handling {
	h := handlingOf(e)
	// Both sides are the bus's base context or nil; comparing them never
	// meets an uncomparable dynamic type.
	if h.Context == nil || h.Context != base {
		return nil
	}
	return h
}
