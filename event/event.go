// Package event holds the few types that every part of EventStream shares:
// the Event itself, the Handler signature and the Middleware that wraps it.
//
// It is a leaf: of this module it imports only internal/eventmeta (what the
// bus keeps about an event and users may not set), so that the root package,
// middleware and the bus's internals can all depend on it without cycles.
// Users normally reach these types through the root package's aliases
// (eventstream.Event, eventstream.EventHandler, eventstream.Middleware).
package event

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"time"

	"libx.net/eventstream/internal/eventmeta"
)

// Event is one message on the bus.
//
// Handlers must treat an Event as read-only: in memory mode the same *Event is
// handed to every consumer group of its topic, concurrently.
type Event struct {
	// ID is unique and time-ordered (a UUIDv7 for events emitted here; events
	// read from Kafka keep the id their producer gave them, e.g. ce_id).
	ID string
	// Topic the event was emitted to.
	Topic string
	// CausationID is the id of the event whose handler emitted this one
	// (an Emit made with the handler's context), "" for an event that
	// starts a chain: one emitted outside any handler.
	CausationID string
	// CorrelationID is the id of the first event of the chain this one
	// belongs to, the same for every event of the chain: an event that
	// starts a chain has its own ID here (the same string, nothing
	// allocated), unless the emitter named the chain (an HTTP request id,
	// say) with WithCorrelationID.
	CorrelationID string
	// Key is the partition key: events with the same key keep their order
	// (and, on Kafka, share a partition). Empty means no key.
	Key string
	// Time is when the event was emitted.
	Time time.Time
	// Data is the payload given to Emit. For an event read from Kafka it is
	// the decoded JSON (map, slice, string, number, bool or nil); use
	// Unmarshal for a typed view.
	Data any
	// Raw is the encoded payload as it travelled (Kafka mode), nil in memory
	// mode. A body that is not JSON stays available here.
	Raw []byte
	// Headers are string metadata that travel with the event: trace context,
	// user headers, dead-letter details.
	Headers map[string]string
	// Record locates the event in a Kafka log; nil in memory mode.
	Record *Record
	// Redelivery is how often a handler of this consumer group handed the
	// event back (Requeue, or a subscription leaving) before this
	// delivery: 0 on the first. The bus sets it; in Kafka mode it counts
	// within one member's ownership of the partition.
	Redelivery int

	// creation is the creation context (send span, baggage) the event
	// carries inside the process; see internal/eventmeta.
	creation *eventmeta.Creation
	// handling is the context its handlers run under, when the bus that
	// emitted the event handles it too; see eventmeta.Handling.
	handling eventmeta.Handling
}

// Record is where an event sits in a Kafka topic.
type Record struct {
	Partition int32
	Offset    int64
}

// New returns an event for topic with a fresh UUIDv7 id and the current time.
func New(topic string, data any) *Event {
	e := &Event{Topic: topic, Data: data, Time: time.Now()}
	// The id is a string of its own, not a view into the Event: whatever
	// keeps it (a span, the history) must not keep the payload alive.
	var id [36]byte
	encodeUUID(&id, newV7(e.Time))
	e.ID = string(id[:])
	return e
}

// newV7 returns a UUIDv7 (RFC 9562) for t: 48 bits of Unix milliseconds,
// then 12 bits of sub-millisecond time (the RFC's method 3, so ids from one
// goroutine sort in time order without shared state), then 62 random bits.
// It is built here rather than with uuid.NewV7 because that reads the clock
// a second time and the crypto random source per id, which made it a third
// of Emit's cost; the runtime's per-thread generator is enough for
// uniqueness.
func newV7(t time.Time) (u [16]byte) {
	ns := t.UnixNano()
	ms := uint64(ns / 1e6)
	subMs := uint64(ns%1e6) * 4096 / 1e6
	binary.BigEndian.PutUint64(u[0:8], ms<<16|0x7<<12|subMs)
	binary.BigEndian.PutUint64(u[8:16], rand.Uint64()>>2|1<<63) // variant 10
	return u
}

// Header returns the header value for key, or "".
func (e *Event) Header(key string) string { return e.Headers[key] }

// Unmarshal decodes the event's payload into v, as JSON: from Raw when the
// event came over the wire, otherwise by encoding Data first, so that a
// handler reads the same shape in memory mode as in Kafka mode.
func (e *Event) Unmarshal(v any) error {
	if e.Raw != nil {
		return json.Unmarshal(e.Raw, v)
	}
	b, err := json.Marshal(e.Data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Handler processes one event. A non-nil error means the event was not
// handled; the bus retries it per the subscription's policy.
type Handler func(ctx context.Context, e *Event) error

// Middleware wraps a Handler. Middleware added earlier runs outermost.
type Middleware func(next Handler) Handler

// Chain applies mws to h so that mws[0] is outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			h = mws[i](h)
		}
	}
	return h
}

func encodeUUID(dst *[36]byte, u [16]byte) {
	hex.Encode(dst[0:8], u[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], u[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], u[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], u[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:36], u[10:16])
}
