// Package history is the view of an event bus that a person reads: the
// most recent send and process operations (Entry), figures per topic and
// consumer group (Stats), and an HTTP page and JSON API showing both with
// the bus's topology (Handler).
//
// The bus fills them from the same measurements that feed its spans and
// metrics, so what they show agrees with a trace viewer and a dashboard.
package history

import "time"

// Entry is one recent send or process operation.
type Entry struct {
	EventID      string        `json:"event_id"`
	Topic        string        `json:"topic"`
	Group        string        `json:"group,omitempty"`        // process entries
	Subscription string        `json:"subscription,omitempty"` // process entries
	Operation    string        `json:"operation"`              // "send" or "process"
	Attempt      int           `json:"attempt,omitempty"`      // process entries, from 1
	Redelivery   int           `json:"redelivery,omitempty"`   // process entries: hand-backs before this delivery
	Start        time.Time     `json:"start"`
	Duration     time.Duration `json:"duration_ns"`
	Status       string        `json:"status"` // StatusOK, StatusError or StatusRequeued
	Error        string        `json:"error,omitempty"`
	// CausationID is the id of the event whose handler emitted this
	// entry's event ("" for one that started its chain); CorrelationID the
	// id of the chain's first event (or the name its emitter gave it).
	CausationID   string `json:"causation_id,omitempty"`
	CorrelationID string `json:"correlation_id"`
	// DeadLetter marks the send of a dead letter: its event is the dead
	// letter of the event CausationID names.
	DeadLetter bool `json:"dead_letter,omitempty"`
	// TraceID and SpanID are those of the operation's span when one was
	// recorded (a tracer that records is set up), empty otherwise.
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
}

// Entry.Status values.
const (
	StatusOK    = "ok"
	StatusError = "error"
	// StatusRequeued: the handler handed the event back (Error holds the
	// reason); not a failure.
	StatusRequeued = "requeued"
)
