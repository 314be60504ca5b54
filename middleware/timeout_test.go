package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

func TestTimeoutExceeded(t *testing.T) {
	h := middleware.Timeout(10 * time.Millisecond)(func(ctx context.Context, e *event.Event) error {
		<-ctx.Done()
		return ctx.Err()
	})
	err := h(context.Background(), event.New("t", nil))
	if !errors.Is(err, middleware.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "10ms") {
		t.Errorf("message %q should name the timeout", err)
	}
}

// A handler that fails with its own error after the deadline still reports a timeout,
// and keeps its error for the log.
func TestTimeoutExceededOtherError(t *testing.T) {
	h := middleware.Timeout(time.Millisecond)(func(ctx context.Context, e *event.Event) error {
		<-ctx.Done()
		return errBoom
	})
	err := h(context.Background(), event.New("t", nil))
	for _, target := range []error{middleware.ErrTimeout, context.DeadlineExceeded, errBoom} {
		if !errors.Is(err, target) {
			t.Errorf("err = %v, want it to wrap %v", err, target)
		}
	}
}

func TestTimeoutNotExceeded(t *testing.T) {
	var deadline time.Time
	var hasDeadline bool
	h := middleware.Timeout(time.Hour)(func(ctx context.Context, e *event.Event) error {
		deadline, hasDeadline = ctx.Deadline()
		return errBoom
	})
	err := h(context.Background(), event.New("t", nil))
	if err != errBoom {
		t.Errorf("err = %v, want the handler's error unchanged", err)
	}
	if !hasDeadline || time.Until(deadline) > time.Hour {
		t.Errorf("handler ctx deadline = %v, %v; want within an hour", deadline, hasDeadline)
	}
}

func TestTimeoutLateSuccessStaysNil(t *testing.T) {
	h := middleware.Timeout(time.Millisecond)(func(ctx context.Context, e *event.Event) error {
		<-ctx.Done()
		return nil
	})
	if err := h(context.Background(), event.New("t", nil)); err != nil {
		t.Errorf("err = %v, want nil", err)
	}
}

// The caller's own, earlier deadline is not this middleware's timeout.
func TestTimeoutParentDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	h := middleware.Timeout(time.Hour)(func(ctx context.Context, e *event.Event) error {
		<-ctx.Done()
		return ctx.Err()
	})
	err := h(ctx, event.New("t", nil))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, middleware.ErrTimeout) {
		t.Errorf("err = %v, want context.DeadlineExceeded without ErrTimeout", err)
	}
}

func TestTimeoutDisabled(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		h := middleware.Timeout(d)(func(ctx context.Context, e *event.Event) error {
			if _, ok := ctx.Deadline(); ok {
				return errors.New("unexpected deadline")
			}
			return nil
		})
		if err := h(context.Background(), event.New("t", nil)); err != nil {
			t.Errorf("Timeout(%v): %v", d, err)
		}
	}
}

// Inside Retry, each attempt gets its own deadline.
func TestTimeoutPerAttempt(t *testing.T) {
	calls := 0
	h := event.Chain(func(ctx context.Context, e *event.Event) error {
		calls++
		if calls == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return ctx.Err() // a fresh attempt has a live ctx
	}, mustRetry(t, middleware.RetryPolicy{MaxRetries: 1}), middleware.Timeout(5*time.Millisecond))
	if err := h(context.Background(), event.New("t", nil)); err != nil || calls != 2 {
		t.Errorf("err = %v after %d calls, want nil after 2", err, calls)
	}
}
