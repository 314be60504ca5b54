package middleware

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
)

// Backoff names how the delay between attempts grows.
type Backoff string

// Backoff strategies.
const (
	// BackoffExponential waits InitialDelay * Multiplier^(retry-1).
	BackoffExponential Backoff = "exponential"
	// BackoffLinear waits InitialDelay * retry.
	BackoffLinear Backoff = "linear"
	// BackoffConstant waits InitialDelay before every retry.
	BackoffConstant Backoff = "constant"
)

// RetryPolicy says how often and how patiently a failed handler is retried.
// The zero value means a single attempt and no retry.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt, so a
	// handler runs at most MaxRetries+1 times. 0 means no retry.
	MaxRetries int
	// BackoffStrategy is how the delay grows; empty means BackoffExponential.
	BackoffStrategy Backoff
	// InitialDelay is the delay before the first retry. 0 retries at once.
	InitialDelay time.Duration
	// MaxDelay caps every delay. 0 means no cap. When both are set it may not
	// be less than InitialDelay.
	MaxDelay time.Duration
	// Multiplier is the growth factor of the exponential strategy; 0 means 2.
	// It may not be below 1 (a shrinking backoff is a misconfiguration) and is
	// ignored by the other strategies.
	Multiplier float64
	// Jitter is the fraction, in [0,1], of each delay that is randomised: the
	// delay is drawn uniformly from [d*(1-Jitter), d], so it never exceeds
	// MaxDelay. 0 means no jitter; 1 is "full jitter". Jitter spreads out the
	// retries of many consumers that failed together.
	Jitter float64
}

// Validate reports the first out-of-range field of p, wrapped in
// ErrInvalidRetryPolicy.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxRetries < 0:
		return invalidPolicy("MaxRetries is %d, must be >= 0", p.MaxRetries)
	case p.InitialDelay < 0:
		return invalidPolicy("InitialDelay is %v, must be >= 0", p.InitialDelay)
	case p.MaxDelay < 0:
		return invalidPolicy("MaxDelay is %v, must be >= 0 (0 means no cap)", p.MaxDelay)
	case p.MaxDelay > 0 && p.InitialDelay > 0 && p.MaxDelay < p.InitialDelay:
		return invalidPolicy("MaxDelay %v is less than InitialDelay %v", p.MaxDelay, p.InitialDelay)
	case math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) || p.Multiplier < 0:
		return invalidPolicy("Multiplier is %v, must be a finite number >= 0", p.Multiplier)
	case !(p.Jitter >= 0 && p.Jitter <= 1): // also rejects NaN
		return invalidPolicy("Jitter is %v, must be in [0,1]", p.Jitter)
	}
	switch p.BackoffStrategy {
	case "", BackoffExponential:
		if p.Multiplier != 0 && p.Multiplier < 1 {
			return invalidPolicy("Multiplier is %v, must be >= 1 for exponential backoff (0 means 2)", p.Multiplier)
		}
	case BackoffLinear, BackoffConstant:
	default:
		return invalidPolicy("BackoffStrategy %q is unknown, want %q, %q or %q",
			p.BackoffStrategy, BackoffExponential, BackoffLinear, BackoffConstant)
	}
	return nil
}

// Delay returns the wait before retry number retry (1 for the first retry,
// which follows attempt 1), capped by MaxDelay and jittered. It saturates
// instead of overflowing for large retry counts, and returns 0 for retry < 1.
// It assumes p is valid.
func (p RetryPolicy) Delay(retry int) time.Duration {
	if retry < 1 || p.InitialDelay <= 0 {
		return 0
	}
	limit := p.MaxDelay
	if limit <= 0 {
		limit = math.MaxInt64
	}
	// Float arithmetic saturates to +Inf rather than wrapping, so the cap
	// below also catches what would overflow a Duration.
	d := float64(p.InitialDelay)
	switch p.BackoffStrategy {
	case BackoffConstant:
	case BackoffLinear:
		d *= float64(retry)
	default:
		m := p.Multiplier
		if m == 0 {
			m = 2
		}
		d *= math.Pow(m, float64(retry-1))
	}
	delay := limit
	if d < float64(limit) {
		delay = time.Duration(d)
	}
	if p.Jitter > 0 {
		delay -= time.Duration(rand.Float64() * p.Jitter * float64(delay))
	}
	return delay
}

// Retry returns middleware that runs next until it succeeds, at most
// p.MaxRetries+1 times, waiting p.Delay between attempts. Attempts after the
// first see their number in event.Attempt(ctx).
//
// Retry sleeps through each backoff inside the handler call, on the caller's
// goroutine: it suits chains a user runs on goroutines of their own. The
// bus's own policy (eventstream.WithRetryPolicy) does not sleep: it runs one
// attempt per call and schedules the next on a timer, so that a waiting
// retry holds its event's place in line but no worker of the pool. Adding
// Retry to a subscription's middleware as well would hold a worker through
// its backoffs.
//
// It stops early on an error marked with Permanent, and when ctx is done
// while waiting. Every failure is returned as a *RetryError, even with a
// zero-retry policy, so that callers always learn the attempt count.
// Retry rejects an invalid policy with an error wrapping ErrInvalidRetryPolicy.
func Retry(p RetryPolicy, opts ...RetryOption) (event.Middleware, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	r := &retrier{policy: p}
	for _, o := range opts {
		o.applyRetry(r)
	}
	return r.middleware, nil
}

// RetryError is the error of a handler that Retry gave up on.
type RetryError struct {
	// Attempts is how many times the handler ran.
	Attempts int
	// Err is the last attempt's error; when ctx ended during a wait it also
	// wraps ctx.Err().
	Err error
	// Permanent is set when Retry stopped because Err was marked Permanent.
	Permanent bool
}

func (e *RetryError) Error() string {
	if e.Permanent {
		return fmt.Sprintf("handler failed with a permanent error on attempt %d: %v", e.Attempts, e.Err)
	}
	if e.Attempts == 1 {
		return fmt.Sprintf("handler failed after 1 attempt: %v", e.Err)
	}
	return fmt.Sprintf("handler failed after %d attempts: %v", e.Attempts, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// RetryOption configures Retry.
type RetryOption interface {
	applyRetry(*retrier)
}

// OnRetry registers fn to be called each time Retry is about to wait before a
// retry: attempt is the number of the attempt that just failed with err
// (event.Attempt(ctx) says the same), delay the wait that follows. It runs on
// the handler's goroutine, so it should be quick; it suits logging and
// counting retries. Given more than once, every fn is called, in order.
// Default: none.
func OnRetry(fn func(ctx context.Context, e *event.Event, attempt int, err error, delay time.Duration)) RetryOption {
	return retryOptionFunc(func(r *retrier) {
		if fn != nil {
			r.onRetry = append(r.onRetry, fn)
		}
	})
}

// Permanent marks err as not worth retrying: Retry returns it at once. The
// result has err's message and unwraps to err; Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	_, ok := errors.AsType[*permanentError](err)
	return ok
}

type retryOptionFunc func(*retrier)

func (f retryOptionFunc) applyRetry(r *retrier) { f(r) }

type retrier struct {
	policy  RetryPolicy
	onRetry []func(ctx context.Context, e *event.Event, attempt int, err error, delay time.Duration)
}

func (r *retrier) middleware(next event.Handler) event.Handler {
	return func(ctx context.Context, e *event.Event) error {
		for attempt := 1; ; attempt++ {
			actx := ctx
			if attempt > 1 { // attempt 1 is event.Attempt's default: no allocation
				actx = eventmeta.WithAttempt(ctx, attempt)
			}
			err := next(actx, e)
			if err == nil {
				return nil
			}
			if IsPermanent(err) {
				return &RetryError{Attempts: attempt, Err: err, Permanent: true}
			}
			if attempt > r.policy.MaxRetries { // not MaxRetries+1: that overflows at math.MaxInt
				return &RetryError{Attempts: attempt, Err: err}
			}
			if cerr := ctx.Err(); cerr != nil { // shutting down: no retry to announce
				return &RetryError{Attempts: attempt,
					Err: fmt.Errorf("%w before a retry; last error: %w", cerr, err)}
			}
			delay := r.policy.Delay(attempt)
			for _, fn := range r.onRetry {
				fn(actx, e, attempt, err, delay)
			}
			if cerr := sleep(ctx, delay); cerr != nil {
				return &RetryError{
					Attempts: attempt,
					Err:      fmt.Errorf("%w while waiting to retry; last error: %w", cerr, err),
				}
			}
		}
	}
}

// sleep waits d or until ctx is done, whichever comes first, and returns
// ctx.Err() in the latter case. A done ctx wins even when d is 0.
func sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// ErrorType makes error.type (on spans, metrics and the dead-letter header)
// name what failed, the wrapped error, rather than the marker: semconv's
// ErrorType finds this method in the chain.
func (e *permanentError) ErrorType() string { return semconv.ErrorType(e.err).Value.AsString() }

func invalidPolicy(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRetryPolicy}, args...)...)
}
