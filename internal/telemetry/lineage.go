package telemetry

import (
	"context"
	"strings"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/history"
)

// lineage is what a history record keeps of its event's lineage: copies of
// the causation and correlation ids. An event that starts its chain (no
// cause, its own id as correlation id) costs nothing but a flag.
type lineage struct {
	causation, correlation       [idCap]byte
	causationLen, correlationLen uint8
	flags                        uint8
}

const (
	correlationIsID uint8 = 1 << iota // the correlation id is the event's id
	longCausation                     // in rare.longCausation
	longCorrelation                   // in rare.longCorrelation
	deadLetterSend                    // the send of a dead letter (of the causation id)
)

// setLineage copies e's lineage into r, after setID.
func (r *record) setLineage(e *event.Event) {
	l := &r.lineage
	if e.CorrelationID == e.ID || e.CorrelationID == "" {
		l.flags |= correlationIsID
	} else if len(e.CorrelationID) <= idCap {
		l.correlationLen = uint8(copy(l.correlation[:], e.CorrelationID))
	} else {
		l.flags |= longCorrelation
		r.extra().longCorrelation = strings.Clone(e.CorrelationID)
	}
	if e.CausationID == "" {
		return
	}
	if len(e.CausationID) <= idCap {
		l.causationLen = uint8(copy(l.causation[:], e.CausationID))
	} else {
		l.flags |= longCausation
		r.extra().longCausation = strings.Clone(e.CausationID)
	}
}

// fillEntry sets e's lineage fields from r.
func (r *record) fillEntry(e *history.Entry) {
	l := &r.lineage
	switch {
	case l.flags&correlationIsID != 0:
		e.CorrelationID = e.EventID
	case l.flags&longCorrelation != 0:
		e.CorrelationID = r.rare.longCorrelation
	default:
		e.CorrelationID = string(l.correlation[:l.correlationLen])
	}
	if l.flags&longCausation != 0 {
		e.CausationID = r.rare.longCausation
	} else if l.causationLen > 0 {
		e.CausationID = string(l.causation[:l.causationLen])
	}
	e.DeadLetter = l.flags&deadLetterSend != 0
}

// deadLetterKey marks the context of a dead letter's send.
type deadLetterKey struct{}

// WithDeadLetter returns ctx marking the send made with it as a dead
// letter's, so that the history tells it from the events a handler emits.
func WithDeadLetter(ctx context.Context) context.Context {
	return context.WithValue(ctx, deadLetterKey{}, true)
}

// isDeadLetterSend: only an event with a cause can be a dead letter, so
// the context is looked at for those alone.
func isDeadLetterSend(ctx context.Context, e *event.Event) bool {
	return e.CausationID != "" && ctx.Value(deadLetterKey{}) != nil
}

// All returns every operation the history holds, newest first, and the
// time from which on it holds every operation that ended: zero when it has
// dropped nothing yet, else the end of the oldest operation a full ring
// still holds (what ended before it may be gone).
func (t *Telemetry) All() (entries []history.Entry, since time.Time) {
	if t.ring == nil {
		return nil, time.Time{}
	}
	return t.ring.all()
}

func (h *historyRings) all() ([]history.Entry, time.Time) {
	var since int64
	var recs []record
	for _, r := range []*ring{h.sends, h.processes} {
		n := len(recs)
		recs = r.recent(len(r.slots), recs)
		if r.pos.Load() > uint64(len(r.slots)) && len(recs) > n {
			// Wrapped: the oldest record held marks the horizon.
			oldest := recs[len(recs)-1]
			since = max(since, oldest.start+int64(oldest.dur))
		}
	}
	out := make([]history.Entry, len(recs))
	for i := range recs {
		out[i] = recs[i].entry()
	}
	var s time.Time
	if since > 0 {
		s = time.Unix(0, since)
	}
	return out, s
}
