package telemetry

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// ErrorType returns a stable, low-cardinality error.type for err:
//   - the value of an ErrorType() string method found in err's chain;
//   - "context.Canceled" or "context.DeadlineExceeded" for those sentinels;
//   - otherwise the Go type of err, after unwrapping fmt.Errorf wrappers,
//     as reflect prints it (e.g. "*middleware.PanicError", "*errors.errorString");
//   - ErrorTypeOther ("_OTHER") for nil or a type without a name.
func ErrorType(err error) string {
	if err == nil {
		return ErrorTypeOther
	}
	if et, ok := err.(interface{ ErrorType() string }); ok {
		if s := et.ErrorType(); s != "" {
			return s
		}
	} else {
		var et interface{ ErrorType() string }
		if errors.As(err, &et) {
			if s := et.ErrorType(); s != "" {
				return s
			}
		}
	}
	err = unwrapFmt(err)
	switch err {
	case context.Canceled:
		return "context.Canceled"
	case context.DeadlineExceeded:
		return "context.DeadlineExceeded"
	}
	if s := reflect.TypeOf(err).String(); s != "" {
		return s
	}
	return ErrorTypeOther
}

var (
	fmtWrapError = reflect.TypeOf(fmt.Errorf("%w", errors.New("x")))
)

// unwrapFmt strips fmt.Errorf's %w wrappers (single-error ones; a multi-%w
// wrapper is a type of its own), which say nothing about the kind of failure.
func unwrapFmt(err error) error {
	for reflect.TypeOf(err) == fmtWrapError {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
	return err
}
