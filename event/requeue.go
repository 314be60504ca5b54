package event

import (
	"errors"
	"strconv"
	"time"
)

// RequeueError is a handler's third answer, beside done (nil) and failed
// (any other error): not done, hand the event back. It is not a failed
// attempt — nothing is retried per the retry policy or dead-lettered for it
// — and the event is delivered again (in memory mode to another member of
// the group when there is one and the event has no key; otherwise by the
// same lane, before newer events of its key), after Delay. Each hand-back
// adds one to the event's Redelivery. A subscription bounds how often an
// event may be handed back (eventstream.WithMaxRequeues); past the bound
// the event is dead-lettered with a *RequeueLimitError.
type RequeueError struct {
	// Reason says why the handler handed the event back; it reaches the
	// logs, the span and, past the bound, the dead letter.
	Reason string
	// Delay is how long the event waits before it is delivered again.
	Delay time.Duration
}

func (e *RequeueError) Error() string {
	if e.Reason == "" {
		return "event handed back"
	}
	return "event handed back: " + e.Reason
}

// Requeue returns the error a handler returns to hand its event back at
// once, with a reason.
func Requeue(reason string) error { return &RequeueError{Reason: reason} }

// RequeueAfter returns the error a handler returns to hand its event back
// to be delivered again after d.
func RequeueAfter(d time.Duration, reason string) error {
	return &RequeueError{Reason: reason, Delay: max(d, 0)}
}

// IsRequeue reports whether err, or an error it wraps, hands the event
// back, and returns that *RequeueError.
func IsRequeue(err error) (*RequeueError, bool) {
	if err == nil {
		return nil, false
	}
	var re *RequeueError
	ok := errors.As(err, &re)
	return re, ok
}

// RequeueLimitError is the cause of a dead letter whose event was handed
// back more often than its subscription allows.
type RequeueLimitError struct {
	// Requeues is how often the event was handed back.
	Requeues int
	// Last is the last hand-back.
	Last *RequeueError
}

func (e *RequeueLimitError) Error() string {
	return "handed back " + strconv.Itoa(e.Requeues) + " times, the limit: " + e.Last.Error()
}
