package eventstream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

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
	ts          *transport.Sub

	// handle is the whole consume chain; deliver adds the dead letter.
	handle Handler

	releaseMu sync.Mutex
	released  bool
	releases  []func()
}

func (s *subscription) ID() string    { return s.id }
func (s *subscription) Topic() string { return s.topic }
func (s *subscription) Group() string { return s.group }

// build assembles the consume chain: telemetry(delivery) → retry[
// telemetry(attempt: span, metrics, history) → logging → recover → user → handler ].
func (s *subscription) build(h Handler, policy RetryPolicy, subMW []Middleware) error {
	b := s.bus
	var outer, inner []Middleware
	if b.obs != nil {
		s.tel = b.obs.tel.Subscription(s.topic, s.group, s.id, s.private)
		outer = append(outer, s.tel.Consume)
		inner = append(inner, s.tel.Process)
	}
	retry, err := middleware.Retry(policy, middleware.OnRetry(s.onRetry))
	if err != nil {
		return configError("WithRetryPolicy", err)
	}
	inner = append(inner, middleware.Logging(b.logger.With("group", s.group)), middleware.Recover())
	inner = append(inner, b.opts.middleware...)
	inner = append(inner, subMW...)
	outer = append(outer, retry)
	if s.breaker != nil { // between the retry and an attempt: circuit.go
		outer = append(outer, s.breaker.middleware)
	}
	s.handle = event.Chain(event.Chain(h, inner...), outer...)
	return nil
}

func (s *subscription) onRetry(ctx context.Context, e *Event, attempt int, err error, delay time.Duration) {
	if s.tel != nil {
		s.tel.RecordRetry()
	}
	s.bus.logger.LogAttrs(ctx, slog.LevelInfo, "eventstream: retrying event",
		slog.String("topic", e.Topic), slog.String("group", s.group), slog.String("event_id", e.ID),
		slog.Int("attempt", attempt), slog.Duration("delay", delay), slog.String("error", err.Error()))
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
	err := s.handle(withCause(ctx, e), e)
	if err == nil {
		return nil
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
