// Package history is a view over EventStream's telemetry: a ring of the
// most recent send and process spans (Recorder, a SpanProcessor), figures
// per topic and consumer group read from the library's own metrics
// (StatsReader, a metric Reader), and an HTTP page and JSON API showing both
// with the bus's topology (Handler).
//
// It keeps no bookkeeping of its own: what it shows is what the spans and
// metrics say, so it agrees with Jaeger and Prometheus by construction.
package history

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/telemetry"
)

// Entry is one recorded send or process span.
type Entry struct {
	EventID      string        `json:"event_id"`
	Topic        string        `json:"topic"`
	Group        string        `json:"group,omitempty"`        // process spans
	Subscription string        `json:"subscription,omitempty"` // process spans
	Operation    string        `json:"operation"`              // "send" or "process"
	Attempt      int           `json:"attempt,omitempty"`      // process spans, from 1
	Start        time.Time     `json:"start"`
	Duration     time.Duration `json:"duration_ns"`
	Status       string        `json:"status"` // StatusOK or StatusError
	Error        string        `json:"error,omitempty"`
	TraceID      string        `json:"trace_id"`
	SpanID       string        `json:"span_id"`
}

// Entry.Status values.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// DefaultSize is the ring size NewRecorder uses for a size <= 0.
const DefaultSize = 1000

// Recorder is an sdktrace.SpanProcessor that keeps the most recent spans of
// scope telemetry.ScopeName (send and process) in a bounded ring. Register
// it on the TracerProvider the bus uses (sdktrace.WithSpanProcessor). It is
// safe for concurrent use; recording a span costs no allocation.
type Recorder struct {
	mu   sync.Mutex
	ring []record
	next int // index the next record is written to
	n    int // records held, <= len(ring)
}

// record is an Entry before formatting: ids stay binary until read.
type record struct {
	eventID, topic, group, subscription, operation string
	attempt                                        int
	start                                          time.Time
	dur                                            time.Duration
	failed                                         bool
	errMsg                                         string
	traceID                                        trace.TraceID
	spanID                                         trace.SpanID
}

var _ sdktrace.SpanProcessor = (*Recorder)(nil)

// NewRecorder returns a Recorder keeping the last size spans (DefaultSize
// when size <= 0).
func NewRecorder(size int) *Recorder {
	if size <= 0 {
		size = DefaultSize
	}
	return &Recorder{ring: make([]record, size)}
}

// OnStart does nothing: spans are recorded when they end.
func (r *Recorder) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd records s if it is a send or process span of this library.
func (r *Recorder) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.InstrumentationScope().Name != telemetry.ScopeName {
		return
	}
	var rec record
	for _, kv := range s.Attributes() {
		switch kv.Key {
		case telemetry.KeyMessageID:
			rec.eventID = kv.Value.AsString()
		case telemetry.KeyDestination:
			rec.topic = kv.Value.AsString()
		case telemetry.KeyConsumerGroup:
			rec.group = kv.Value.AsString()
		case telemetry.KeySubscription:
			rec.subscription = kv.Value.AsString()
		case telemetry.KeyOperationType:
			rec.operation = kv.Value.AsString()
		case telemetry.KeyAttempt:
			rec.attempt = int(kv.Value.AsInt64())
		}
	}
	if rec.operation != telemetry.OperationSend && rec.operation != telemetry.OperationProcess {
		return
	}
	rec.start = s.StartTime()
	rec.dur = s.EndTime().Sub(rec.start)
	if st := s.Status(); st.Code == codes.Error {
		rec.failed, rec.errMsg = true, st.Description
	}
	sc := s.SpanContext()
	rec.traceID, rec.spanID = sc.TraceID(), sc.SpanID()

	r.mu.Lock()
	r.ring[r.next] = rec
	r.next = (r.next + 1) % len(r.ring)
	if r.n < len(r.ring) {
		r.n++
	}
	r.mu.Unlock()
}

// Shutdown does nothing; the ring stays readable.
func (r *Recorder) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing: there is nothing buffered.
func (r *Recorder) ForceFlush(context.Context) error { return nil }

// Len returns the number of spans held.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Recent returns up to n entries, newest first; all held when n <= 0.
func (r *Recorder) Recent(n int) []Entry {
	r.mu.Lock()
	if n <= 0 || n > r.n {
		n = r.n
	}
	recs := make([]record, n)
	for i := range recs {
		recs[i] = r.ring[(r.next-1-i+2*len(r.ring))%len(r.ring)]
	}
	r.mu.Unlock()

	out := make([]Entry, n)
	for i, rec := range recs {
		status := StatusOK
		if rec.failed {
			status = StatusError
		}
		out[i] = Entry{
			EventID: rec.eventID, Topic: rec.topic, Group: rec.group, Subscription: rec.subscription,
			Operation: rec.operation, Attempt: rec.attempt, Start: rec.start, Duration: rec.dur,
			Status: status, Error: rec.errMsg,
			TraceID: rec.traceID.String(), SpanID: rec.spanID.String(),
		}
	}
	return out
}
