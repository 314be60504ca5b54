package eventstream

import (
	"math"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// WithRateLimit lets at most perSecond events a second start their handler,
// in bursts of up to burst (golang.org/x/time/rate's token bucket), for this
// subscription (every member of a group has its own). It is backpressure,
// not failure: an event over the rate waits at the head of its lane, holding
// no worker of the pool, and starts when its token is due — memory mode:
// the lanes fill and Emit waits as for a slow handler; Kafka mode: fetching
// pauses once the lanes are full. Every attempt takes a token, so a retry
// storm keeps to the rate too. perSecond must be positive (math.Inf(1)
// means no limit) and burst at least 1. Default: no limit.
//
// middleware.RateLimit is the same bucket as a middleware for handlers
// outside the bus; inside it, its wait holds the worker, which this option
// does not.
func WithRateLimit(perSecond float64, burst int) SubscribeOption {
	return subOptionFunc(func(o *subOptions) { o.rateLimit = &rateLimit{perSecond: perSecond, burst: burst} })
}

type rateLimit struct {
	perSecond float64
	burst     int
}

// limiter returns the subscription's bucket; nil for no limit.
func (r *rateLimit) limiter() (*rate.Limiter, error) {
	switch {
	case math.IsNaN(r.perSecond) || r.perSecond <= 0:
		return nil, &ConfigError{Field: "WithRateLimit", Reason: "perSecond must be > 0 (math.Inf(1) for no limit), got " +
			strconv.FormatFloat(r.perSecond, 'g', -1, 64)}
	case r.burst < 1:
		return nil, &ConfigError{Field: "WithRateLimit", Reason: "burst must be >= 1, got " + strconv.Itoa(r.burst)}
	case math.IsInf(r.perSecond, 1):
		return nil, nil
	}
	return rate.NewLimiter(rate.Limit(r.perSecond), r.burst), nil
}

// throttle takes a token for one attempt now, or says how long until one is
// due without taking it: the event then waits in its lane (a
// transport.Again) and asks again, so a wait cut short by Off or Close
// leaves the bucket as it was.
func throttle(l *rate.Limiter) time.Duration {
	now := time.Now()
	r := l.ReserveN(now, 1) // always OK: burst >= 1
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
	}
	return d
}
