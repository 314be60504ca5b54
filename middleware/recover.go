package middleware

import (
	"context"
	"fmt"
	"runtime/debug"

	"libx.net/eventstream/event"
)

// Recover returns middleware that turns a panic in next into a *PanicError,
// so that a panicking handler is an ordinary failure (retried, logged,
// dead-lettered) instead of a crashed process. Place it inside Retry and
// inside Logging, so both see the panic as an error.
func Recover() event.Middleware {
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) (err error) {
			returned := false
			defer func() {
				// Checking returned, not only recover()'s value, also catches
				// panic(nil) under GODEBUG=panicnil=1, where recover gives nil.
				// (By default Go 1.21+ recovers a *runtime.PanicNilError.)
				if v := recover(); v != nil || !returned {
					err = &PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			err = next(ctx, e)
			returned = true
			return err
		}
	}
}

// PanicError is the error of a handler that panicked.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the panicking goroutine's stack, for the log.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// PanicStack returns Stack. The bus's process span records the stack of an
// error with this method in its chain as a "panic" span event, so a recover
// middleware of your own has its panics traced as Recover's are when its
// error has the method too.
func (e *PanicError) PanicStack() []byte { return e.Stack }

// Unwrap returns Value when it is an error (for example a
// *runtime.PanicNilError or a runtime.Error), so errors.Is and errors.As see
// through the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
