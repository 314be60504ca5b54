package eventstream

import (
	"context"
	"log/slog"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
	"libx.net/eventstream/internal/transport"
)

// RequeueError is what Requeue and RequeueAfter return: a handler's answer
// "not done, hand the event back", which is not a failed attempt.
type RequeueError = event.RequeueError

// RequeueLimitError is the cause of the dead letter of an event handed
// back more often than WithMaxRequeues allows.
type RequeueLimitError = event.RequeueLimitError

// Requeue, returned by a handler, hands its event back to the consumer
// group: it is delivered again — in memory mode by another member of the
// group when there is one and the event has no key, else by the same lane,
// before newer events of its key; in Kafka mode its record stays
// uncommitted and is delivered again in order. It is not a failed attempt:
// the retry policy, the circuit breaker and the dead-letter topic ignore
// it. The event's Redelivery counts the hand-backs; WithMaxRequeues bounds
// them.
func Requeue(reason string) error { return event.Requeue(reason) }

// RequeueAfter is Requeue with a delay: the event is delivered again after
// d, holding its lane (nothing behind it in that lane runs) but no worker.
func RequeueAfter(d time.Duration, reason string) error { return event.RequeueAfter(d, reason) }

// DefaultMaxRequeues is how often an event may be handed back to a
// subscription's group unless WithMaxRequeues says otherwise.
const DefaultMaxRequeues = 100

// WithMaxRequeues bounds how often an event may be handed back (Requeue)
// before it is dead-lettered with a *RequeueLimitError: an endless
// hand-back would otherwise never end. n >= 0; 0 dead-letters at the first
// Requeue. Default: DefaultMaxRequeues.
func WithMaxRequeues(n int) SubscribeOption {
	return subOptionFunc(func(o *subOptions) { o.maxRequeues = &n })
}

// requeue answers a handler's hand-back: the event is delivered again,
// with its Redelivery one higher, after the delay the handler asked for;
// past the subscription's bound it ends, to be dead-lettered.
func (s *subscription) requeue(ctx context.Context, e *Event, re *RequeueError) error {
	if e.Redelivery >= s.maxRequeues && re != errLeaving { // a leaving subscription's is not the handler's
		return &RequeueLimitError{Requeues: e.Redelivery, Last: re}
	}
	if s.tel != nil {
		s.tel.RecordRequeue()
	}
	s.bus.logger.LogAttrs(ctx, slog.LevelInfo, "eventstream: event handed back",
		slog.String("topic", e.Topic), slog.String("group", s.group), slog.String("event_id", e.ID),
		slog.Int("redelivery", e.Redelivery), slog.Duration("delay", re.Delay), slog.String("reason", re.Reason))
	// A copy: the same *Event may be at other groups, never written.
	next := eventmeta.Redelivered(e).(*Event)
	return &transport.Again{Delay: re.Delay, Attempt: 1, Cut: s.endDelivery, Event: next, HandBack: true}
}
