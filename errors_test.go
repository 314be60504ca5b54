package eventstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"libx.net/eventstream/internal/kafka"
	"libx.net/eventstream/internal/memory"
	"libx.net/eventstream/internal/transport"
)

// Every error a transport returns reaches the caller as one of the root's:
// fromTransport is the one place that converts them.
func TestFromTransport(t *testing.T) {
	cause := errors.New("json: unsupported type: func()")
	ke := &kafka.Error{Op: "produce", Topic: "t", Err: context.DeadlineExceeded}
	de := &kafka.DecodeError{Topic: "t", Err: cause}
	for _, c := range []struct {
		in   error
		want func(error) bool
	}{
		{nil, func(err error) bool { return err == nil }},
		{transport.ErrClosed, func(err error) bool { return err == ErrClosed }},
		{fmt.Errorf("flush failed: %w", transport.ErrClosed), func(err error) bool {
			return errors.Is(err, ErrClosed) && strings.Contains(err.Error(), "flush failed")
		}},
		{transport.ErrGoexit, func(err error) bool { return errors.As(err, new(*GoexitError)) }},
		{&memory.FullError{Topic: "t", Group: "g", Err: context.DeadlineExceeded}, func(err error) bool {
			var qf *QueueFullError
			return errors.As(err, &qf) && qf.Topic == "t" && qf.Group == "g" &&
				errors.Is(err, ErrQueueFull) && errors.Is(err, context.DeadlineExceeded)
		}},
		{&kafka.EncodeError{Type: "func()", Err: cause}, func(err error) bool {
			var ee *EncodeError
			return errors.As(err, &ee) && ee.Type == "func()" && errors.Is(err, ErrEncode) && errors.Is(err, cause)
		}},
		{ke, func(err error) bool {
			var got *KafkaError
			return errors.As(err, &got) && got == ke && errors.Is(err, ErrKafka)
		}},
		{de, func(err error) bool { var got *DecodeError; return errors.As(err, &got) && got == de }},
		{&MQError{Op: "publish", Err: cause}, func(err error) bool { return errors.Is(err, ErrMQ) }},
		{&transport.UnhandledError{Unhandled: 3}, func(err error) bool {
			var se *ShutdownError
			return errors.As(err, &se) && se.Unhandled == 3 && errors.Is(err, ErrShutdownTimeout)
		}},
	} {
		if got := fromTransport(c.in); !c.want(got) {
			t.Errorf("fromTransport(%v) = %#v", c.in, got)
		}
	}
}

// The common case, no error, is on every Emit and every delivery: it
// costs no allocation.
func TestFromTransportNilAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = fromTransport(nil) }); n != 0 {
		t.Fatalf("fromTransport(nil) allocates %v times", n)
	}
}
