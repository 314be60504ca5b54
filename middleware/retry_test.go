package middleware_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

var errBoom = errors.New("boom")

func mustRetry(t *testing.T, p middleware.RetryPolicy, opts ...middleware.RetryOption) event.Middleware {
	t.Helper()
	mw, err := middleware.Retry(p, opts...)
	if err != nil {
		t.Fatalf("Retry(%+v): %v", p, err)
	}
	return mw
}

// failing returns a handler that fails its first n calls and records the
// attempt number each call saw.
func failing(n int, seen *[]int) event.Handler {
	var mu sync.Mutex
	return func(ctx context.Context, e *event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		*seen = append(*seen, event.Attempt(ctx))
		if len(*seen) <= n {
			return errBoom
		}
		return nil
	}
}

func TestRetryAttempts(t *testing.T) {
	tests := []struct {
		name         string
		maxRetries   int
		failures     int
		wantAttempts int
		wantErr      bool
	}{
		{"success first try", 3, 0, 1, false},
		{"success after two failures", 3, 2, 3, false},
		{"success on last attempt", 3, 3, 4, false},
		{"exhausted", 3, 10, 4, true},
		{"zero retries fails once", 0, 10, 1, true},
		{"zero retries succeeds", 0, 0, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []int
			h := mustRetry(t, middleware.RetryPolicy{MaxRetries: tt.maxRetries})(failing(tt.failures, &seen))
			err := h(context.Background(), event.New("t", nil))
			if len(seen) != tt.wantAttempts {
				t.Fatalf("handler ran %d times, want %d", len(seen), tt.wantAttempts)
			}
			for i, a := range seen {
				if a != i+1 {
					t.Errorf("call %d saw event.Attempt = %d, want %d", i+1, a, i+1)
				}
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			re, ok := errors.AsType[*middleware.RetryError](err)
			if !ok {
				t.Fatalf("err = %T %v, want *RetryError", err, err)
			}
			if re.Attempts != tt.wantAttempts || re.Permanent {
				t.Errorf("RetryError = %+v, want Attempts %d, not permanent", re, tt.wantAttempts)
			}
			if !errors.Is(err, errBoom) {
				t.Errorf("err %v does not wrap the handler's error", err)
			}
		})
	}
}

func TestRetryFirstAttemptContextUntouched(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	var got context.Context
	h := mustRetry(t, middleware.RetryPolicy{MaxRetries: 2})(func(ctx context.Context, e *event.Event) error {
		got = ctx
		return nil
	})
	if err := h(ctx, event.New("t", nil)); err != nil {
		t.Fatal(err)
	}
	if got != ctx {
		t.Error("first attempt got a derived context; it should get the caller's as is")
	}
}

func TestRetryPermanent(t *testing.T) {
	calls := 0
	h := mustRetry(t, middleware.RetryPolicy{MaxRetries: 5})(func(ctx context.Context, e *event.Event) error {
		calls++
		if calls == 2 {
			return middleware.Permanent(errBoom)
		}
		return errors.New("transient")
	})
	err := h(context.Background(), event.New("t", nil))
	if calls != 2 {
		t.Fatalf("handler ran %d times, want 2", calls)
	}
	re, ok := errors.AsType[*middleware.RetryError](err)
	if !ok || !re.Permanent || re.Attempts != 2 {
		t.Fatalf("err = %#v, want permanent *RetryError after 2 attempts", err)
	}
	if !errors.Is(err, errBoom) || !middleware.IsPermanent(err) {
		t.Errorf("err %v: errors.Is(errBoom) = %v, IsPermanent = %v; want both", err,
			errors.Is(err, errBoom), middleware.IsPermanent(err))
	}
	if !strings.Contains(err.Error(), "permanent") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("message %q should say permanent and carry the cause", err)
	}
}

func TestPermanent(t *testing.T) {
	if middleware.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	p := middleware.Permanent(errBoom)
	if p.Error() != errBoom.Error() {
		t.Errorf("message %q, want the wrapped error's %q", p, errBoom)
	}
	if middleware.Permanent(p) != p {
		t.Error("Permanent should not wrap twice")
	}
	if middleware.IsPermanent(errBoom) || middleware.IsPermanent(nil) {
		t.Error("IsPermanent true for an unmarked error")
	}
	wrapped := errors.Join(errors.New("ctx"), p)
	if !middleware.IsPermanent(wrapped) {
		t.Error("IsPermanent should see through wrapping")
	}
}

func TestRetryZeroRetriesWrapsError(t *testing.T) {
	h := mustRetry(t, middleware.RetryPolicy{})(func(context.Context, *event.Event) error { return errBoom })
	err := h(context.Background(), event.New("t", nil))
	re, ok := errors.AsType[*middleware.RetryError](err)
	if !ok || re.Attempts != 1 {
		t.Fatalf("err = %v, want *RetryError{Attempts: 1}", err)
	}
	if want := "handler failed after 1 attempt: boom"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestRetryWaits(t *testing.T) {
	const delay = 20 * time.Millisecond
	var seen []int
	h := mustRetry(t, middleware.RetryPolicy{
		MaxRetries: 2, BackoffStrategy: middleware.BackoffConstant, InitialDelay: delay,
	})(failing(2, &seen))
	start := time.Now()
	if err := h(context.Background(), event.New("t", nil)); err != nil {
		t.Fatal(err)
	}
	// Only a lower bound: an upper bound would make the test flaky on a busy machine.
	if elapsed := time.Since(start); elapsed < 2*delay {
		t.Errorf("two retries took %v, want >= %v", elapsed, 2*delay)
	}
}

func TestRetryCancelDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := mustRetry(t, middleware.RetryPolicy{
		MaxRetries: 3, BackoffStrategy: middleware.BackoffConstant, InitialDelay: time.Hour,
	}, middleware.OnRetry(func(context.Context, *event.Event, int, error, time.Duration) {
		cancel() // cancel just as the hour-long wait begins
	}))(func(context.Context, *event.Event) error { return errBoom })

	done := make(chan error, 1)
	go func() { done <- h(ctx, event.New("t", nil)) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
			t.Errorf("err = %v, want it to wrap context.Canceled and the handler's error", err)
		}
		if re, ok := errors.AsType[*middleware.RetryError](err); !ok || re.Attempts != 1 {
			t.Errorf("err = %#v, want *RetryError{Attempts: 1}", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Retry did not return after its context was cancelled")
	}
}

func TestRetryDoneContextSkipsZeroDelayRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	h := mustRetry(t, middleware.RetryPolicy{MaxRetries: 5})(func(context.Context, *event.Event) error {
		calls++
		return errBoom
	})
	err := h(ctx, event.New("t", nil))
	if calls != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("calls = %d, err = %v; want 1 call and context.Canceled", calls, err)
	}
}

func TestRetryOnRetry(t *testing.T) {
	type call struct {
		attempt    int
		ctxAttempt int
		delay      time.Duration
		err        error
	}
	var calls, second []call
	p := middleware.RetryPolicy{MaxRetries: 2, BackoffStrategy: middleware.BackoffLinear, InitialDelay: time.Millisecond}
	h := mustRetry(t, p,
		middleware.OnRetry(func(ctx context.Context, e *event.Event, attempt int, err error, delay time.Duration) {
			calls = append(calls, call{attempt, event.Attempt(ctx), delay, err})
		}),
		middleware.OnRetry(nil), // ignored
		middleware.OnRetry(func(ctx context.Context, e *event.Event, attempt int, err error, delay time.Duration) {
			second = append(second, call{attempt: attempt})
		}),
	)(func(context.Context, *event.Event) error { return errBoom })
	_ = h(context.Background(), event.New("t", nil))

	want := []call{{1, 1, time.Millisecond, errBoom}, {2, 2, 2 * time.Millisecond, errBoom}}
	if len(calls) != len(want) {
		t.Fatalf("OnRetry called %d times, want %d (not after the last attempt)", len(calls), len(want))
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
	if len(second) != 2 {
		t.Errorf("second OnRetry called %d times, want 2", len(second))
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		p    middleware.RetryPolicy
		want []time.Duration // for retries 1, 2, …
	}{
		{"exponential default multiplier", middleware.RetryPolicy{InitialDelay: 100 * ms},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms}},
		{"exponential x3", middleware.RetryPolicy{BackoffStrategy: middleware.BackoffExponential, InitialDelay: 10 * ms, Multiplier: 3},
			[]time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms}},
		{"exponential capped", middleware.RetryPolicy{InitialDelay: 100 * ms, MaxDelay: 300 * ms, Multiplier: 2},
			[]time.Duration{100 * ms, 200 * ms, 300 * ms, 300 * ms}},
		{"linear", middleware.RetryPolicy{BackoffStrategy: middleware.BackoffLinear, InitialDelay: 50 * ms},
			[]time.Duration{50 * ms, 100 * ms, 150 * ms, 200 * ms}},
		{"linear capped", middleware.RetryPolicy{BackoffStrategy: middleware.BackoffLinear, InitialDelay: 50 * ms, MaxDelay: 120 * ms},
			[]time.Duration{50 * ms, 100 * ms, 120 * ms, 120 * ms}},
		{"constant ignores multiplier", middleware.RetryPolicy{BackoffStrategy: middleware.BackoffConstant, InitialDelay: 70 * ms, Multiplier: 5},
			[]time.Duration{70 * ms, 70 * ms, 70 * ms}},
		{"no initial delay", middleware.RetryPolicy{MaxDelay: time.Second},
			[]time.Duration{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				if got := tt.p.Delay(i + 1); got != want {
					t.Errorf("Delay(%d) = %v, want %v", i+1, got, want)
				}
			}
			if got := tt.p.Delay(0); got != 0 {
				t.Errorf("Delay(0) = %v, want 0", got)
			}
		})
	}
}

func TestRetryPolicyDelayNoOverflow(t *testing.T) {
	for _, p := range []middleware.RetryPolicy{
		{InitialDelay: time.Second, Multiplier: 10},
		{InitialDelay: time.Hour, BackoffStrategy: middleware.BackoffLinear},
		{InitialDelay: time.Second, Multiplier: 2, Jitter: 0.5},
	} {
		prev := time.Duration(0)
		for _, r := range []int{1, 10, 62, 63, 64, 100, 1000, math.MaxInt32, math.MaxInt} {
			d := p.Delay(r)
			if d <= 0 {
				t.Fatalf("%+v: Delay(%d) = %v, want positive (overflow?)", p, r, d)
			}
			if p.Jitter == 0 && d < prev {
				t.Fatalf("%+v: Delay(%d) = %v < Delay of a smaller retry %v", p, r, d, prev)
			}
			prev = d
		}
	}
	capped := middleware.RetryPolicy{InitialDelay: time.Second, MaxDelay: time.Minute}
	if got := capped.Delay(math.MaxInt); got != time.Minute {
		t.Errorf("Delay(MaxInt) = %v, want the cap %v", got, time.Minute)
	}
}

func TestRetryPolicyJitter(t *testing.T) {
	const base = 100 * time.Millisecond
	for _, j := range []float64{0.25, 1} {
		p := middleware.RetryPolicy{BackoffStrategy: middleware.BackoffConstant, InitialDelay: base, Jitter: j}
		lo := time.Duration(float64(base) * (1 - j))
		distinct := map[time.Duration]bool{}
		for range 1000 {
			d := p.Delay(1)
			if d < lo || d > base {
				t.Fatalf("jitter %v: Delay = %v, want in [%v, %v]", j, d, lo, base)
			}
			distinct[d] = true
		}
		if len(distinct) < 10 {
			t.Errorf("jitter %v: only %d distinct delays in 1000 draws", j, len(distinct))
		}
	}
	// Jitter applies after the cap, so the cap still holds.
	p := middleware.RetryPolicy{InitialDelay: time.Second, MaxDelay: 2 * time.Second, Jitter: 0.5}
	for range 1000 {
		if d := p.Delay(10); d < time.Second || d > 2*time.Second {
			t.Fatalf("capped jittered Delay = %v, want in [1s, 2s]", d)
		}
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	invalid := []struct {
		p     middleware.RetryPolicy
		field string
	}{
		{middleware.RetryPolicy{MaxRetries: -1}, "MaxRetries"},
		{middleware.RetryPolicy{InitialDelay: -time.Second}, "InitialDelay"},
		{middleware.RetryPolicy{MaxDelay: -time.Second}, "MaxDelay"},
		{middleware.RetryPolicy{InitialDelay: time.Second, MaxDelay: time.Millisecond}, "MaxDelay"},
		{middleware.RetryPolicy{Multiplier: -2}, "Multiplier"},
		{middleware.RetryPolicy{Multiplier: math.NaN()}, "Multiplier"},
		{middleware.RetryPolicy{Multiplier: math.Inf(1)}, "Multiplier"},
		{middleware.RetryPolicy{Multiplier: 0.5}, "Multiplier"},
		{middleware.RetryPolicy{BackoffStrategy: middleware.BackoffExponential, Multiplier: 0.99}, "Multiplier"},
		{middleware.RetryPolicy{BackoffStrategy: "fibonacci"}, "BackoffStrategy"},
		{middleware.RetryPolicy{BackoffStrategy: "Exponential"}, "BackoffStrategy"},
		{middleware.RetryPolicy{Jitter: -0.1}, "Jitter"},
		{middleware.RetryPolicy{Jitter: 1.5}, "Jitter"},
		{middleware.RetryPolicy{Jitter: math.NaN()}, "Jitter"},
	}
	for _, tt := range invalid {
		err := tt.p.Validate()
		if !errors.Is(err, middleware.ErrInvalidRetryPolicy) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidRetryPolicy", tt.p, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.field) {
			t.Errorf("Validate(%+v) = %q, want the message to name %s", tt.p, err, tt.field)
		}
		if mw, err := middleware.Retry(tt.p); mw != nil || !errors.Is(err, middleware.ErrInvalidRetryPolicy) {
			t.Errorf("Retry(%+v) = %v, %v; want nil, ErrInvalidRetryPolicy", tt.p, mw != nil, err)
		}
	}

	valid := []middleware.RetryPolicy{
		{},
		{MaxRetries: 3, BackoffStrategy: "exponential", InitialDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second, Multiplier: 2.0},
		{BackoffStrategy: middleware.BackoffLinear, Multiplier: 0.5}, // multiplier ignored
		{Multiplier: 1},
		{InitialDelay: time.Second, MaxDelay: time.Second},
		{MaxDelay: time.Second}, // cap without initial delay
		{Jitter: 0}, {Jitter: 1},
	}
	for _, p := range valid {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", p, err)
		}
	}
}

// The README writes the policy as a pointer literal with an untyped string
// strategy; this must keep compiling.
func TestRetryPolicyReadmeLiteral(t *testing.T) {
	p := &middleware.RetryPolicy{
		MaxRetries:      3,
		BackoffStrategy: "exponential",
		InitialDelay:    100 * time.Millisecond,
		MaxDelay:        5 * time.Second,
		Multiplier:      2.0,
	}
	if _, err := middleware.Retry(*p); err != nil {
		t.Fatal(err)
	}
}

func TestRetryConcurrent(t *testing.T) {
	mw := mustRetry(t, middleware.RetryPolicy{MaxRetries: 2, Jitter: 1, InitialDelay: time.Microsecond})
	var wg sync.WaitGroup
	for range 16 {
		var seen []int
		h := mw(failing(2, &seen))
		wg.Go(func() {
			if err := h(context.Background(), event.New("t", nil)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
