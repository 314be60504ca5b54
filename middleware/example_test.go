package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

// counter is a middleware with state: a struct whose Middleware method has
// the event.Middleware signature.
type counter struct{ handled, failed atomic.Int64 }

func (c *counter) Middleware(next event.Handler) event.Handler {
	return func(ctx context.Context, e *event.Event) error {
		err := next(ctx, e)
		if err != nil {
			c.failed.Add(1)
		} else {
			c.handled.Add(1)
		}
		return err
	}
}

// Writing a middleware of one's own and chaining it with this package's.
func Example() {
	retry, err := middleware.Retry(middleware.RetryPolicy{MaxRetries: 2})
	if err != nil {
		panic(err)
	}
	var c counter
	calls := 0
	h := event.Chain(func(ctx context.Context, e *event.Event) error {
		calls++
		if calls == 1 {
			return errors.New("flaky")
		}
		return nil
	}, retry, c.Middleware)

	fmt.Println(h(context.Background(), event.New("orders", nil)))
	fmt.Println("handled:", c.handled.Load(), "failed:", c.failed.Load())
	// Output:
	// <nil>
	// handled: 1 failed: 1
}

func ExampleRetry() {
	retry, err := middleware.Retry(middleware.RetryPolicy{
		MaxRetries:      3,
		BackoffStrategy: middleware.BackoffExponential,
		InitialDelay:    time.Millisecond,
		Multiplier:      2,
	}, middleware.OnRetry(func(ctx context.Context, e *event.Event, attempt int, err error, delay time.Duration) {
		fmt.Printf("attempt %d failed (%v), retrying in %v\n", attempt, err, delay)
	}))
	if err != nil {
		panic(err)
	}
	h := retry(func(ctx context.Context, e *event.Event) error {
		return fmt.Errorf("database down (attempt %d)", event.Attempt(ctx))
	})

	err = h(context.Background(), event.New("orders", nil))
	fmt.Println(err)
	var re *middleware.RetryError
	if errors.As(err, &re) {
		fmt.Println("attempts:", re.Attempts)
	}
	// Output:
	// attempt 1 failed (database down (attempt 1)), retrying in 1ms
	// attempt 2 failed (database down (attempt 2)), retrying in 2ms
	// attempt 3 failed (database down (attempt 3)), retrying in 4ms
	// handler failed after 4 attempts: database down (attempt 4)
	// attempts: 4
}

func ExampleRetryPolicy_Delay() {
	p := middleware.RetryPolicy{
		MaxRetries:      5,
		BackoffStrategy: "exponential",
		InitialDelay:    100 * time.Millisecond,
		MaxDelay:        time.Second,
		Multiplier:      3,
	}
	for retry := 1; retry <= p.MaxRetries; retry++ {
		fmt.Println(retry, p.Delay(retry))
	}
	// Output:
	// 1 100ms
	// 2 300ms
	// 3 900ms
	// 4 1s
	// 5 1s
}

func ExampleRetryPolicy_Validate() {
	p := middleware.RetryPolicy{BackoffStrategy: "exponential", Multiplier: 0.5}
	err := p.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, middleware.ErrInvalidRetryPolicy))
	// Output:
	// eventstream: invalid retry policy: Multiplier is 0.5, must be >= 1 for exponential backoff (0 means 2)
	// true
}

func ExamplePermanent() {
	retry, _ := middleware.Retry(middleware.RetryPolicy{MaxRetries: 5})
	h := retry(func(ctx context.Context, e *event.Event) error {
		var order struct{ ID int }
		if err := e.Unmarshal(&order); err != nil {
			// Malformed input will not improve with retries.
			return middleware.Permanent(fmt.Errorf("bad order: %w", err))
		}
		return nil
	})
	err := h(context.Background(), event.New("orders", "not an object"))
	fmt.Println(middleware.IsPermanent(err))
	fmt.Println(err)
	// Output:
	// true
	// handler failed with a permanent error on attempt 1: bad order: json: cannot unmarshal string into Go value of type struct { ID int }
}

func ExampleRecover() {
	h := middleware.Recover()(func(ctx context.Context, e *event.Event) error {
		panic("nil order")
	})
	err := h(context.Background(), event.New("orders", nil))
	var pe *middleware.PanicError
	fmt.Println(errors.As(err, &pe), pe.Value)
	fmt.Println(err)
	// Output:
	// true nil order
	// handler panicked: nil order
}

func ExampleLogging() {
	// Drop the time so the output is stable.
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	h := middleware.Logging(logger)(func(ctx context.Context, e *event.Event) error {
		return errors.New("payment declined")
	})
	e := &event.Event{ID: "0190a3c2-0000-7000-8000-000000000001", Topic: "payments"}
	_ = h(context.Background(), e)
	// Output:
	// {"level":"WARN","msg":"eventstream: event failed","topic":"payments","event_id":"0190a3c2-0000-7000-8000-000000000001","attempt":1,"error":"payment declined"}
}

func ExampleTimeout() {
	h := middleware.Timeout(10 * time.Millisecond)(func(ctx context.Context, e *event.Event) error {
		select {
		case <-time.After(time.Minute): // a call that honours ctx
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	err := h(context.Background(), event.New("orders", nil))
	fmt.Println(err)
	fmt.Println(errors.Is(err, middleware.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// handler timed out after 10ms: context deadline exceeded
	// true true
}
