package middleware_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

func TestRecover(t *testing.T) {
	tests := []struct {
		name     string
		panicked any
		wantMsg  string
		wantIs   error // what errors.Is should find through Unwrap, if anything
	}{
		{"string", "kaput", "handler panicked: kaput", nil},
		{"error", errBoom, "handler panicked: boom", errBoom},
		{"int", 42, "handler panicked: 42", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := middleware.Recover()(func(context.Context, *event.Event) error { panic(tt.panicked) })
			err := h(context.Background(), event.New("t", nil))
			pe, ok := errors.AsType[*middleware.PanicError](err)
			if !ok {
				t.Fatalf("err = %T %v, want *PanicError", err, err)
			}
			if pe.Value != tt.panicked {
				t.Errorf("Value = %v, want %v", pe.Value, tt.panicked)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message %q, want %q", err, tt.wantMsg)
			}
			if !strings.Contains(string(pe.Stack), "recover_test.go") {
				t.Errorf("stack does not show the panicking frame:\n%s", pe.Stack)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantIs)
			}
			if tt.wantIs == nil && pe.Unwrap() != nil {
				t.Errorf("Unwrap() = %v, want nil for a non-error value", pe.Unwrap())
			}
		})
	}
}

func TestRecoverPanicNil(t *testing.T) {
	h := middleware.Recover()(func(context.Context, *event.Event) error { panic(nil) })
	err := h(context.Background(), event.New("t", nil))
	pe, ok := errors.AsType[*middleware.PanicError](err)
	if !ok {
		t.Fatalf("err = %v, want *PanicError", err)
	}
	// Go 1.21+ recovers panic(nil) as *runtime.PanicNilError (unless GODEBUG=panicnil=1,
	// where Value is nil but the panic is still an error).
	if pe.Value != nil {
		if _, ok := errors.AsType[*runtime.PanicNilError](err); !ok {
			t.Errorf("Value = %T, want *runtime.PanicNilError", pe.Value)
		}
	}
}

func TestRecoverRuntimeError(t *testing.T) {
	h := middleware.Recover()(func(context.Context, *event.Event) error {
		var s []int
		_ = s[len(s)] // index out of range: a runtime.Error
		return nil
	})
	err := h(context.Background(), event.New("t", nil))
	if _, ok := errors.AsType[runtime.Error](err); !ok {
		t.Errorf("err = %v, want it to unwrap to a runtime.Error", err)
	}
}

func TestRecoverPassesThrough(t *testing.T) {
	h := middleware.Recover()(func(context.Context, *event.Event) error { return errBoom })
	if err := h(context.Background(), event.New("t", nil)); err != errBoom {
		t.Errorf("err = %v, want the handler's error unchanged", err)
	}
	h = middleware.Recover()(func(context.Context, *event.Event) error { return nil })
	if err := h(context.Background(), event.New("t", nil)); err != nil {
		t.Errorf("err = %v, want nil", err)
	}
}

// A panicking handler is retried like any failure when Recover runs inside Retry.
func TestRecoverInsideRetry(t *testing.T) {
	calls := 0
	h := event.Chain(func(context.Context, *event.Event) error {
		calls++
		if calls < 3 {
			panic("flaky")
		}
		return nil
	}, mustRetry(t, middleware.RetryPolicy{MaxRetries: 3}), middleware.Recover())
	if err := h(context.Background(), event.New("t", nil)); err != nil || calls != 3 {
		t.Errorf("err = %v after %d calls, want nil after 3", err, calls)
	}
}
