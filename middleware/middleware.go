// Package middleware holds EventStream's handler middleware: retry with
// backoff, panic recovery, structured logging, per-attempt timeouts, rate
// limits, deduplication and correlation ids.
//
// A middleware is a plain function, event.Middleware, that takes the next
// handler and returns a handler wrapping it: do something before, call
// next(ctx, e), look at the error after. Middleware added earlier runs
// outermost. One that keeps state (counters, a limiter) is a struct whose
// Middleware method has that signature, so it can be handed over as
// s.Middleware; one whose constructor can reject its configuration returns
// (event.Middleware, error) rather than panicking, as Retry does. Middleware
// must be safe for concurrent use: one handler serves every goroutine of a
// subscription.
package middleware

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them (or are
// one of the typed errors *RetryError and *PanicError), so test with
// errors.Is and errors.As, never by comparing strings.
var (
	// ErrInvalidRetryPolicy is wrapped by RetryPolicy.Validate and Retry when
	// a field of the policy is out of range; the message names the field.
	ErrInvalidRetryPolicy = errors.New("eventstream: invalid retry policy")

	// ErrTimeout is wrapped, together with context.DeadlineExceeded, by the
	// error of a handler that failed after Timeout's deadline passed.
	ErrTimeout = errors.New("handler timed out")
	// ErrInvalidRateLimit is wrapped by RateLimit's error when its limit or
	// burst is out of range.
	ErrInvalidRateLimit = errors.New("eventstream: invalid rate limit")
)
