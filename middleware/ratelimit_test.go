package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

// The burst passes at once; the next call waits for its token and, when
// ctx ends first, returns ctx's error without calling next.
func TestRateLimitWaitsAndRespectsContext(t *testing.T) {
	mw, err := middleware.RateLimit(rate.Every(time.Hour), 2)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	h := mw(func(context.Context, *event.Event) error { calls++; return nil })
	for range 2 {
		if err := h(context.Background(), event.New("t", nil)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = h(ctx, event.New("t", nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's own error", err)
	}
	if calls != 2 {
		t.Errorf("next called %d times, want 2 (the third call never got a token)", calls)
	}
}

// A call over the rate is delayed, not failed.
func TestRateLimitDelaysInsteadOfFailing(t *testing.T) {
	mw, err := middleware.RateLimit(1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	h := mw(func(context.Context, *event.Event) error { calls++; return nil })
	for range 5 {
		if err := h(context.Background(), event.New("t", nil)); err != nil {
			t.Fatalf("err = %v, want every call to pass after waiting", err)
		}
	}
	if calls != 5 {
		t.Errorf("next called %d times, want 5", calls)
	}
}

// A cancelled wait gives its token back, so the next caller is not
// charged for it.
func TestRateLimitCancelledWaitReturnsToken(t *testing.T) {
	mw, err := middleware.RateLimit(rate.Every(50*time.Millisecond), 1)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(func(context.Context, *event.Event) error { return nil })
	_ = h(context.Background(), event.New("t", nil)) // takes the burst
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h(ctx, event.New("t", nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if err := h(context.Background(), event.New("t", nil)); err != nil {
		t.Fatal(err)
	}
}

func TestRateLimitInvalid(t *testing.T) {
	for _, c := range []struct {
		limit rate.Limit
		burst int
	}{{0, 1}, {-1, 1}, {10, 0}} {
		if _, err := middleware.RateLimit(c.limit, c.burst); !errors.Is(err, middleware.ErrInvalidRateLimit) {
			t.Errorf("RateLimit(%v, %d) = %v, want ErrInvalidRateLimit", c.limit, c.burst, err)
		}
	}
	if _, err := middleware.RateLimit(rate.Inf, 1); err != nil {
		t.Errorf("rate.Inf: %v", err)
	}
}

// Limiting a subscription to 100 events a second, in bursts of 10: events
// beyond the rate wait (and the subscription's queue with them); none fails.
func ExampleRateLimit() {
	limit, err := middleware.RateLimit(100, 10)
	if err != nil {
		panic(err)
	}
	h := limit(func(ctx context.Context, e *event.Event) error { return nil })
	for range 3 {
		fmt.Println(h(context.Background(), event.New("orders", nil)))
	}
	// With the bus: bus.On("orders", handler,
	//     eventstream.WithSubscriptionMiddleware(limit))
	// Output:
	// <nil>
	// <nil>
	// <nil>
}
