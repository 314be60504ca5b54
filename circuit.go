package eventstream

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

// CircuitBreaker configures a subscription's circuit breaker (see
// WithCircuitBreaker). Zero fields take the defaults documented on them.
type CircuitBreaker struct {
	// ConsecutiveFailures opens the circuit after this many failed
	// attempts in a row. Default 5.
	ConsecutiveFailures int
	// FailureRatio, when positive, also opens the circuit when at least
	// this fraction (in (0,1]) of the attempts within Window failed, once
	// there were MinAttempts of them. Default 0: consecutive failures only.
	FailureRatio float64
	// MinAttempts is how many attempts within Window FailureRatio needs
	// before it judges. Default 20.
	MinAttempts int
	// Window is the rolling period FailureRatio counts over. Default 1m.
	Window time.Duration
	// CoolDown is how long the circuit stays open before one event is let
	// through to probe. Default 30s.
	CoolDown time.Duration
}

// Circuit states, as the eventstream.circuit.state gauge reports them.
const (
	CircuitClosed   = "closed"    // events flow (gauge 0)
	CircuitHalfOpen = "half-open" // one event probes (gauge 1)
	CircuitOpen     = "open"      // events are held (gauge 2)
)

// Defaults of CircuitBreaker.
const (
	defaultBreakerFailures    = 5
	defaultBreakerMinAttempts = 20
	defaultBreakerWindow      = time.Minute
	defaultBreakerCoolDown    = 30 * time.Second
	// breakerProbePoll is how often an event held while a probe runs looks
	// again, so that the lanes resume soon after the probe succeeded.
	breakerProbePoll = 50 * time.Millisecond
)

// WithCircuitBreaker gives the subscription a circuit breaker
// (github.com/sony/gobreaker), so that an outage of what its handler
// depends on pauses the subscription instead of retrying and
// dead-lettering every event. After cb's threshold of failed attempts the
// circuit opens: the subscription takes no more events — memory mode: its
// lanes hold their events and Emit waits for room, as with a slow handler;
// Kafka mode: fetching pauses once its lanes are full, and nothing is
// committed past what was handled. Held events are neither retried nor
// dead-lettered, and holding costs no worker of the pool. After CoolDown
// one event probes; its success closes the circuit, its failure opens it
// for another CoolDown. An event whose own attempt failed follows its retry
// policy as always (its next attempt waits for the probe), so a poison
// event cannot hold the subscription forever.
//
// Failed attempts count; a Permanent error (bad input, not an outage) and
// a context cancelled by shutdown do not. Default: no breaker.
func WithCircuitBreaker(cb CircuitBreaker) SubscribeOption {
	return subOptionFunc(func(o *subOptions) { o.breaker = &cb })
}

// normalize validates c and fills in its defaults.
func (c CircuitBreaker) normalize() (CircuitBreaker, error) {
	bad := func(field, reason string) (CircuitBreaker, error) {
		return c, &ConfigError{Field: "WithCircuitBreaker", Reason: field + " " + reason}
	}
	switch {
	case c.ConsecutiveFailures < 0 || c.ConsecutiveFailures > math.MaxUint32:
		return bad("ConsecutiveFailures", "must be in [0, 2^32)")
	case math.IsNaN(c.FailureRatio) || c.FailureRatio < 0 || c.FailureRatio > 1:
		return bad("FailureRatio", "must be in [0,1]")
	case c.MinAttempts < 0 || c.MinAttempts > math.MaxUint32:
		return bad("MinAttempts", "must be in [0, 2^32)")
	case c.Window < 0:
		return bad("Window", "must not be negative")
	case c.CoolDown < 0:
		return bad("CoolDown", "must not be negative")
	}
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = defaultBreakerFailures
	}
	if c.MinAttempts == 0 {
		c.MinAttempts = defaultBreakerMinAttempts
	}
	if c.Window == 0 {
		c.Window = defaultBreakerWindow
	}
	if c.CoolDown == 0 {
		c.CoolDown = defaultBreakerCoolDown
	}
	return c, nil
}

// breaker is one subscription's circuit: gobreaker's state machine, and
// when the open circuit lets its probe through.
type breaker struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	coolDown time.Duration
	probeAt  atomic.Int64 // unix nanoseconds; while open, when the probe is due
}

func newBreaker(s *subscription, c CircuitBreaker) *breaker {
	br := &breaker{coolDown: c.CoolDown}
	logger := s.bus.logger
	br.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         s.id,
		MaxRequests:  1, // one probe
		Interval:     c.Window,
		BucketPeriod: c.Window / 10, // a rolling window, not one that resets at once
		Timeout:      c.CoolDown,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			if n.ConsecutiveFailures >= uint32(c.ConsecutiveFailures) {
				return true
			}
			return c.FailureRatio > 0 && n.Requests >= uint32(c.MinAttempts) &&
				float64(n.TotalFailures) >= c.FailureRatio*float64(n.Requests)
		},
		IsExcluded: func(err error) bool {
			_, requeue := event.IsRequeue(err) // not a failure at all
			return middleware.IsPermanent(err) || errors.Is(err, context.Canceled) || requeue
		},
		// Called under gobreaker's lock: record and log, never call back.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				br.probeAt.Store(time.Now().Add(c.CoolDown).UnixNano())
			}
			level := slog.LevelInfo
			if to == gobreaker.StateOpen {
				level = slog.LevelWarn
			}
			logger.LogAttrs(context.Background(), level, "eventstream: circuit "+to.String(),
				slog.String("topic", s.topic), slog.String("group", s.group), slog.String("subscription", s.id),
				slog.String("from", from.String()), slog.Duration("cool_down", c.CoolDown))
		},
	})
	return br
}

// allow asks whether an attempt may run now. When it may, done must be
// called with the attempt's error; when not, wait is how long to hold the
// event before asking again.
func (br *breaker) allow() (done func(error), wait time.Duration) {
	done, err := br.cb.Allow()
	if err == nil {
		return done, 0
	}
	if errors.Is(err, gobreaker.ErrOpenState) {
		return nil, max(time.Until(time.Unix(0, br.probeAt.Load())), time.Millisecond)
	}
	return nil, min(breakerProbePoll, br.coolDown) // a probe is under way
}

// stateName is the circuit's state as the debug page shows it. Asking
// gobreaker moves an open circuit whose cool-down is over to half-open, so
// an idle subscription shows it is ready to probe.
func (br *breaker) stateName() string {
	switch br.cb.State() {
	case gobreaker.StateOpen:
		return CircuitOpen
	case gobreaker.StateHalfOpen:
		return CircuitHalfOpen
	}
	return CircuitClosed
}

// gauge is the state as eventstream.circuit.state reports it: 0 closed,
// 1 half-open, 2 open (gobreaker's order), so that max over a group's
// members is its worst.
func (br *breaker) gauge() int64 { return int64(br.cb.State()) }

// circuitStates reports, per topic and group with a breaker, the worst
// state of the group's subscriptions in this bus (eventstream.circuit.state).
func (b *bus) circuitStates(observe func(topic, group string, state int64)) {
	type key struct{ topic, group string }
	worst := map[key]int64{}
	b.mu.Lock()
	for _, s := range b.subs {
		if s.breaker == nil {
			continue
		}
		k := key{s.topic, s.group}
		if st, ok := worst[k]; !ok || s.breaker.gauge() > st {
			worst[k] = s.breaker.gauge()
		}
	}
	b.mu.Unlock()
	for k, st := range worst {
		observe(k.topic, k.group, st)
	}
}

// circuitName is the worst circuit state among subs (for the debug
// page), "" when none has a breaker.
func circuitName(subs []*subscription) string {
	var worst *breaker
	for _, s := range subs {
		if s.breaker != nil && (worst == nil || s.breaker.gauge() > worst.gauge()) {
			worst = s.breaker
		}
	}
	if worst == nil {
		return ""
	}
	return worst.stateName()
}
