// Package eventmeta holds what the bus keeps about an event beyond its
// public fields: the attempt number in a handler's context, and the
// creation context an event carries inside the process. Package event reads
// them; only the bus's own packages can set them, so that users cannot
// forge an attempt or a trace parent.
package eventmeta

import (
	"context"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// AttemptKey is the context key of the attempt number (an int, from 1).
type AttemptKey struct{}

// WithAttempt returns ctx carrying attempt n of the current delivery. The
// first attempt carries nothing: event.Attempt's default is 1, which saves
// an allocation per event.
func WithAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, AttemptKey{}, n)
}

// Creation is an event's creation context as it travels inside the
// process: the send span's context and the emitter's baggage. Inside one
// process this replaces writing and parsing trace headers; an event that
// leaves the process carries them in its headers instead.
type Creation struct {
	SpanContext trace.SpanContext
	Baggage     baggage.Baggage
}

// The accessors of an event's creation field, installed by package event
// (the only one that can reach the field) when it is initialised.
var (
	creationOf  func(e any) *Creation
	setCreation func(e any, c *Creation)
)

// Install is called once, by package event.
func Install(get func(e any) *Creation, set func(e any, c *Creation)) {
	creationOf, setCreation = get, set
}

// CreationOf returns the creation context e (an *event.Event) carries, or
// nil.
func CreationOf(e any) *Creation { return creationOf(e) }

// SetCreation makes e carry c. It is called before e is published; the
// field is read-only afterwards, as the event itself is.
func SetCreation(e any, c *Creation) { setCreation(e, c) }
