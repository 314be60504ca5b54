package eventstream

import (
	"context"
	"time"

	"libx.net/eventstream/history"
	"libx.net/eventstream/internal/eventmeta"
)

// Lineage: every event names the event whose handler emitted it (its
// causation id) and the first event of its chain (its correlation id), so
// that the events one event caused can be found again — in the history,
// in spans and, on Kafka, in record headers that other consumers read.

// withCause returns the context a handler of e runs under: ctx with e as
// the cause of what the handler emits. One per delivery, shared by every
// attempt (a retry is still caused by e). An event this bus (base) emitted
// carries one for its first delivery; the others get their own.
func withCause(base, ctx context.Context, e *Event) context.Context {
	if h := eventmeta.Claim(e, base, ctx); h != nil {
		return h
	}
	return context.WithValue(ctx, eventmeta.CauseKey{}, e)
}

// causeOf returns the event whose handler's context ctx is, or nil.
func causeOf(ctx context.Context) *Event {
	c, _ := ctx.Value(eventmeta.CauseKey{}).(*Event)
	return c
}

// setLineage fills e's causation and correlation ids from the handler's
// context ctx may be, and the emitter's explicit correlation id, if any.
// An event that starts a chain shares its ID string as correlation id:
// nothing is allocated for it.
func setLineage(ctx context.Context, e *Event, correlationID string) {
	if c := causeOf(ctx); c != nil {
		e.CausationID = c.ID
		e.CorrelationID = c.CorrelationID
		if e.CorrelationID == "" {
			e.CorrelationID = c.ID // an event made by hand, not by Emit
		}
	} else {
		e.CorrelationID = e.ID
	}
	if correlationID != "" {
		e.CorrelationID = correlationID
	}
}

// All implements history.ArchiveSource for the event view.
func (d debugSource) All() ([]history.Entry, time.Time) {
	if d.b.obs == nil {
		return nil, time.Time{}
	}
	return d.b.obs.tel.All()
}
