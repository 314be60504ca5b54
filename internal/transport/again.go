package transport

import (
	"context"
	"strconv"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
)

// Again is the error Deliver returns when its event is not done and is due
// again after Delay (a failed attempt whose retry waits out its backoff).
// The transport keeps the event at the head of its lane — nothing behind it
// in that lane runs, and nothing is acknowledged past it — but gives its
// worker back (lanes.Lane.Park). When Delay has passed it calls Deliver
// again with Next's context; when it gives the event up instead (the
// subscription left, the bus closed, Kafka revoked the partition), it calls
// Cut once, so that the bus ends the delivery it began.
type Again struct {
	Delay time.Duration
	// Attempt is the number of the next attempt (event.Attempt).
	Attempt int
	// Cut, when not nil, is called when the event will not be delivered
	// again by this lane.
	Cut func()
	// Event, when not nil, is what to deliver next in place of the event
	// (a copy with a higher Redelivery).
	Event *event.Event
	// HandBack: the handler handed the event back (not a retry): memory
	// mode may give it to another member of the group.
	HandBack bool
}

// NextEvent returns the event to deliver next: Event, else e.
func (a *Again) NextEvent(e *event.Event) *event.Event {
	if a.Event != nil {
		return a.Event
	}
	return e
}

func (a *Again) Error() string {
	return "event due again in " + a.Delay.String() + " (attempt " + strconv.Itoa(a.Attempt) + ")"
}

// RetryPending marks the error for the bus's telemetry: the delivery is
// not over, the event stays in flight.
func (a *Again) RetryPending() {}

// Next returns the context of the next delivery: base carrying the
// attempt number, marked as a delivery that goes on.
func (a *Again) Next(base context.Context) context.Context {
	return eventmeta.WithAttempt(eventmeta.WithResumed(base), a.Attempt)
}

// Abandon calls Cut, if any.
func (a *Again) Abandon() {
	if a.Cut != nil {
		a.Cut()
	}
}
