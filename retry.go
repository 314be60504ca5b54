package eventstream

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/middleware"
)

// try runs one attempt of e and decides what follows a failure, per the
// subscription's retry policy: the end (a *middleware.RetryError, which deliver
// dead-letters), or a retry due after the policy's backoff. The wait is not
// slept here: try returns a *transport.Again and the transport keeps e at
// the head of its lane — nothing behind it in that lane runs, so order
// holds — while the worker goes back to the pool and other lanes run. The
// next attempt comes back through deliver with its number in ctx, so spans,
// history, metrics and the OnRetry log see one attempt per call, as with
// middleware.Retry.
func (s *subscription) try(ctx context.Context, e *Event) error {
	attempt := event.Attempt(ctx)
	if s.limiter != nil {
		if d := throttle(s.limiter); d > 0 {
			// Over the rate (ratelimit.go): the event waits for its token
			// in its lane, holding no worker; the lane backs up as for a
			// slow handler. Before the breaker, which would count a
			// probe that never ran.
			return &transport.Again{Delay: d, Attempt: attempt, Cut: s.endDelivery}
		}
	}
	var done func(error)
	if s.breaker != nil {
		var wait time.Duration
		if done, wait = s.breaker.allow(); done == nil {
			// The circuit is open (circuit.go): the event waits for the
			// probe in its lane, holding no worker, neither retried nor
			// dead-lettered.
			return &transport.Again{Delay: wait, Attempt: attempt, Cut: s.endDelivery}
		}
	}
	err := s.attempt(ctx, e)
	if done != nil {
		done(err)
	}
	if err == nil {
		return nil
	}
	if re, ok := event.IsRequeue(err); ok {
		return s.requeue(ctx, e, re)
	}
	if middleware.IsPermanent(err) {
		return &middleware.RetryError{Attempts: attempt, Err: err, Permanent: true}
	}
	if attempt > s.policy.MaxRetries { // not MaxRetries+1: that overflows at math.MaxInt
		return &middleware.RetryError{Attempts: attempt, Err: err}
	}
	if s.leaving(ctx) {
		// The subscription leaves: the retry is the group's (leave.go).
		return s.requeue(ctx, e, errLeaving)
	}
	if cerr := ctx.Err(); cerr != nil { // shutting down: no retry to announce
		return &middleware.RetryError{Attempts: attempt, Err: fmt.Errorf("%w before a retry; last error: %w", cerr, err)}
	}
	delay := s.policy.Delay(attempt)
	s.onRetry(ctx, e, attempt, err, delay)
	return &transport.Again{Delay: delay, Attempt: attempt + 1, Cut: s.endDelivery}
}

// endDelivery ends a delivery whose retry will not run here (the
// subscription left or the bus closed while it waited): the event is no
// longer in flight for this subscription.
func (s *subscription) endDelivery() {
	if s.tel != nil {
		s.tel.EndDelivery()
	}
}

func (s *subscription) onRetry(ctx context.Context, e *Event, attempt int, err error, delay time.Duration) {
	if s.tel != nil {
		s.tel.RecordRetry()
	}
	s.bus.logger.LogAttrs(ctx, slog.LevelInfo, "eventstream: retrying event",
		slog.String("topic", e.Topic), slog.String("group", s.group), slog.String("event_id", e.ID),
		slog.Int("attempt", attempt), slog.Duration("delay", delay), slog.String("error", err.Error()))
}
