package eventstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream"
)

// The whole life of an event is one trace: the send span, one process span
// per attempt (children of the send span), the dead-letter send (a child
// of the original send) and the dead letter's own processing.
func TestRetriesAndDeadLetterStayInOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	bus, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	if _, err := bus.On("orders.dlq", func(ctx context.Context, e *eventstream.Event) error {
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		return errors.New("declined")
	}, eventstream.WithConsumerGroup("billing"), eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: 1, BackoffStrategy: "constant", InitialDelay: time.Millisecond,
	})); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	one := func(name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
		t.Helper()
		if len(byName[name]) != 1 || byName[name][0].SpanKind() != kind {
			t.Fatalf("want one %v span %q, have %d", kind, name, len(byName[name]))
		}
		return byName[name][0]
	}
	send := one("send orders", trace.SpanKindProducer)
	dlqSend := one("send orders.dlq", trace.SpanKindProducer)
	dlqProcess := one("process orders.dlq", trace.SpanKindConsumer)
	attempts := byName["process orders"]
	if len(attempts) != 2 {
		t.Fatalf("want 2 process spans (1 + 1 retry), have %d", len(attempts))
	}
	traceID := send.SpanContext().TraceID()
	for _, s := range append(attempts, dlqSend, dlqProcess) {
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("%s is in trace %s, not the event's trace %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
	}
	for _, s := range append(attempts, dlqSend) {
		if s.Parent().SpanID() != send.SpanContext().SpanID() {
			t.Errorf("%s's parent is %s, want the send span", s.Name(), s.Parent().SpanID())
		}
	}
	if dlqProcess.Parent().SpanID() != dlqSend.SpanContext().SpanID() {
		t.Error("the dead letter's process span is not a child of its send span")
	}
	for _, s := range attempts {
		if s.Status().Code.String() != "Error" {
			t.Errorf("failed attempt has status %v", s.Status())
		}
	}
}

type declinedError struct{ reason string }

func (e *declinedError) Error() string { return "declined: " + e.reason }

// Permanent(err) fails the event at once; what is reported as the error's
// type — on the span, on the metrics, in the dead letter's header — is
// err's, not the marker's.
func TestPermanentReportsTheWrappedErrorType(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	bus := quietBus(t, eventstream.DefaultConfig(), eventstream.WithTracerProvider(tp))
	got := make(chan *eventstream.Event, 1)
	if _, err := bus.On("orders.dlq", func(ctx context.Context, e *eventstream.Event) error { got <- e; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		return eventstream.Permanent(&declinedError{"card expired"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	dl := <-got
	const want = "*eventstream_test.declinedError"
	if et := dl.Headers[eventstream.HeaderDeadLetterErrorType]; et != want {
		t.Errorf("dead letter error type %q, want %q", et, want)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if s.Name() == "process orders" && kv.Key == "error.type" {
				found = true
				if kv.Value.AsString() != want {
					t.Errorf("span error.type %q, want %q", kv.Value.AsString(), want)
				}
			}
		}
	}
	if !found {
		t.Error("the failed attempt's span has no error.type")
	}
}

// Inside one process the creation context rides on the event: a handler
// sees no trace headers, yet its span is the send span's child. An event
// that crosses a queue gets W3C headers.
func TestTraceHeadersOnlyWhenTheEventLeaves(t *testing.T) {
	for _, mode := range []string{"memory", "adapter"} {
		t.Run(mode, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			cfg := eventstream.DefaultConfig()
			if mode == "adapter" {
				a := newQueueAdapter(t)
				a.system = "kafka"
				cfg = &eventstream.Config{Mode: eventstream.ModeDistributed, MQ: a}
			}
			bus := quietBus(t, cfg, eventstream.WithTracerProvider(tp))
			headers := make(chan map[string]string, 1)
			if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
				headers <- e.Headers
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := bus.Emit(context.Background(), "orders", 1); err != nil {
				t.Fatal(err)
			}
			h := <-headers
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
			if _, ok := h["traceparent"]; ok != (mode == "adapter") {
				t.Errorf("headers %v", h)
			}
			var send, proc sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				switch s.Name() {
				case "send orders":
					send = s
				case "process orders":
					proc = s
				}
			}
			if send == nil || proc == nil || proc.Parent().SpanID() != send.SpanContext().SpanID() {
				t.Fatalf("process span not a child of the send span")
			}
		})
	}
}
