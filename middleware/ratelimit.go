package middleware

import (
	"context"
	"fmt"
	"math"

	"golang.org/x/time/rate"

	"libx.net/eventstream/event"
)

// RateLimit returns middleware that lets at most limit events a second reach
// next, in bursts of up to burst, using golang.org/x/time/rate's token
// bucket. It is backpressure, not failure: a call over the rate waits for
// its token, so the subscription's lanes fill and, in memory mode, Emit
// waits as it does for a slow handler (Kafka mode: fetching pauses). A wait
// never fails the event; only ctx ending (the subscription leaving, Close)
// cuts it short, and then the call returns ctx's error without calling next.
//
// The wait happens inside the handler call, on the caller's goroutine: for
// handlers the bus runs, eventstream.WithRateLimit is the same bucket
// without holding a pool worker while an event waits for its token.
//
// One RateLimit is one bucket: give each subscription its own
// (WithSubscriptionMiddleware) for a per-subscription rate; one shared by
// several subscriptions limits them together. Placed inside the bus's
// retry, as subscription middleware is, every attempt takes a token, so a
// retry storm cannot exceed the rate either. rate.Inf means no limit.
// limit must be positive and burst at least 1; otherwise RateLimit returns
// an error wrapping ErrInvalidRateLimit.
func RateLimit(limit rate.Limit, burst int) (event.Middleware, error) {
	switch {
	case math.IsNaN(float64(limit)) || limit <= 0:
		return nil, fmt.Errorf("%w: limit is %v, must be > 0 (rate.Inf for none)", ErrInvalidRateLimit, float64(limit))
	case burst < 1:
		return nil, fmt.Errorf("%w: burst is %d, must be >= 1", ErrInvalidRateLimit, burst)
	}
	if limit == rate.Inf {
		return func(next event.Handler) event.Handler { return next }, nil
	}
	l := rate.NewLimiter(limit, burst)
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			if err := wait(ctx, l); err != nil {
				return err
			}
			return next(ctx, e)
		}
	}, nil
}

// wait takes one token, waiting for it until ctx is done. Unlike
// Limiter.Wait it returns ctx's own error (Limiter.Wait fails at once, with
// an error of its own, when ctx's deadline is nearer than the token), so
// that callers see the same "not done" as from any other wait on ctx.
func wait(ctx context.Context, l *rate.Limiter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := l.Reserve() // never !OK: burst >= 1 and a reservation is for one token
	if err := sleep(ctx, r.Delay()); err != nil {
		r.Cancel() // give the token back to those still waiting
		return err
	}
	return nil
}
