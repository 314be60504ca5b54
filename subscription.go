package eventstream

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/time/rate"
	"libx.net/eventstream/event"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/middleware"
)

// subscription is one On call: its consume chain and its place in the
// transport.
type subscription struct {
	bus         *bus
	id          string
	topic       string
	group       string
	private     bool
	concurrency int
	tel         *itel.Subscription // nil when telemetry is off
	breaker     *breaker           // nil without WithCircuitBreaker
	limiter     *rate.Limiter      // nil without WithRateLimit
	maxRequeues int                // hand-backs before a dead letter (requeue.go)
	ts          *transport.Sub

	// handle is the consume chain of one delivery: telemetry, then try,
	// which runs attempt once and decides on a retry (retry.go); deliver
	// adds the dead letter.
	handle  Handler
	attempt Handler
	policy  RetryPolicy

	releaseMu sync.Mutex
	released  bool
	releases  []func()
}

func (s *subscription) ID() string    { return s.id }
func (s *subscription) Topic() string { return s.topic }
func (s *subscription) Group() string { return s.group }

// build assembles the consume chain: telemetry(delivery) → try (one
// attempt, and the retry decision) [ telemetry(attempt: span, metrics,
// history) → logging → not done (leave.go) → recover → user → handler ].
func (s *subscription) build(h Handler, policy RetryPolicy, subMW []Middleware) error {
	b := s.bus
	if err := policy.Validate(); err != nil {
		return configError("WithRetryPolicy", err)
	}
	s.policy = policy
	var outer, inner []Middleware
	if b.obs != nil {
		s.tel = b.obs.tel.Subscription(s.topic, s.group, s.id, s.private)
		outer = append(outer, s.tel.Consume)
		inner = append(inner, s.tel.Process)
	}
	inner = append(inner, middleware.Logging(b.logger.With("group", s.group)), s.notDone, middleware.Recover())
	inner = append(inner, b.opts.middleware...)
	inner = append(inner, subMW...)
	s.attempt = event.Chain(h, inner...)
	s.handle = event.Chain(s.try, outer...)
	return nil
}

// errShutdown: an event cut off by Close; Close counted it as unhandled.
var errShutdown = errors.New("eventstream: event cut off by shutdown")

// deliver is transport.Sub.Deliver: it runs the consume chain for one
// event and decides its dead letter, in one place for every transport.
func (s *subscription) deliver(ctx context.Context, e *Event, failure error) error {
	b := s.bus
	if skipReplayFor(s, e) { // replay.go: a replay meant for another group
		return nil
	}
	if failure != nil {
		failure = fromTransport(failure)
		switch {
		case errors.As(failure, new(*GoexitError)):
			return b.deadLetter(ctx, s, e, &middleware.RetryError{Attempts: 1, Err: failure})
		case s.ts.DeadLetterUndecodable && !b.isDeadLetter(e):
			// A dead letter is always delivered: its subscriber is there
			// to see what failed, JSON or not.
			return b.deadLetter(ctx, s, e, failure)
		}
	}
	if event.Attempt(ctx) > 1 && b.baseCtx.Err() != nil {
		// A retry due after Close cut the wait short: counted by Close,
		// never run.
		s.endDelivery()
		return errShutdown
	}
	err := s.handle(withCause(b.baseCtx, ctx, e), e)
	if err == nil {
		return nil
	}
	if _, again := err.(*transport.Again); again {
		return err
	}
	if b.baseCtx.Err() != nil {
		return errShutdown
	}
	return b.deadLetter(ctx, s, e, err)
}

// ended is transport.Sub.Left: the subscription's last handler returned
// after Off. Its gauges go, and a private group's series fold into the
// ended ones (not before: the last delivery would bring them back).
func (s *subscription) ended() {
	s.release()
	if s.private && s.tel != nil {
		s.tel.Forget()
	}
}

func (s *subscription) addRelease(f func()) {
	s.releaseMu.Lock()
	defer s.releaseMu.Unlock()
	if s.released {
		f()
		return
	}
	s.releases = append(s.releases, f)
}

func (s *subscription) release() {
	s.releaseMu.Lock()
	fs := s.releases
	s.releases, s.released = nil, true
	s.releaseMu.Unlock()
	for _, f := range fs {
		f()
	}
}
