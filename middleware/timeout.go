package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"libx.net/eventstream/event"
)

// Timeout returns middleware that runs next with ctx bounded by d. When next
// fails after that deadline has passed, the error wraps both ErrTimeout and
// context.DeadlineExceeded (and next's error). d <= 0 means no timeout.
//
// Go cannot stop a goroutine: a handler that ignores ctx runs to its end
// regardless, and its nil result stays nil. Placed inside Retry, the bound
// applies to each attempt separately.
func Timeout(d time.Duration) event.Middleware {
	if d <= 0 {
		return func(next event.Handler) event.Handler { return next }
	}
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			// The cause tells our deadline apart from an earlier one of the
			// caller's ctx, which is not this middleware's timeout.
			tctx, cancel := context.WithTimeoutCause(ctx, d, ErrTimeout)
			defer cancel()
			err := next(tctx, e)
			if err == nil || context.Cause(tctx) != ErrTimeout {
				return err
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%w after %v: %w", ErrTimeout, d, err)
			}
			return fmt.Errorf("%w after %v (%w): %w", ErrTimeout, d, context.DeadlineExceeded, err)
		}
	}
}
