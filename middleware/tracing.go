package middleware

import (
	"context"
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/telemetry"
)

// EmitTracing returns emit-chain middleware that wraps a transport's publish
// in a "send {topic}" PRODUCER span and writes the span's context into
// e.Headers through t's propagator, so that the event's creation context is
// the send span. A span context already in ctx (the caller's span, or a
// remote one: the dead-letter path passes the original creation context) is
// its parent. system is the messaging.system value ("memory", "kafka").
//
// On error the span gets status Error and error.type; after next returns, a
// Kafka location in e.Record is added as partition and offset.
func EmitTracing(t *telemetry.Telemetry, system string) event.Middleware {
	tracer, prop := t.Tracer(), t.Propagator()
	sender := t.Sender(system)
	kafka := system == telemetry.SystemKafka
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			d := sender.Destination(e.Topic)
			attrs := make([]attribute.KeyValue, 0, d.SpanAttributeCount()+2)
			attrs = d.AppendSpanAttributes(attrs)
			attrs = append(attrs, telemetry.KeyMessageID.String(e.ID))
			if kafka && e.Key != "" {
				attrs = append(attrs, telemetry.KeyKafkaMessageKey.String(e.Key))
			}
			ctx, span := tracer.Start(ctx, d.SpanName(),
				trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
			if e.Headers == nil {
				e.Headers = make(map[string]string, 2)
			}
			prop.Inject(ctx, propagation.MapCarrier(e.Headers))

			err := next(ctx, e)

			if err != nil {
				setError(span, err)
			}
			if e.Record != nil && span.IsRecording() {
				span.SetAttributes(appendRecordAttrs(make([]attribute.KeyValue, 0, 2), e.Record)...)
			}
			span.End()
			return err
		}
	}
}

// ProcessTracing returns consume-chain middleware, placed inside retry, that
// runs each handler attempt in a "process {topic}" CONSUMER span.
//
// The span's parent is the event's creation context, read from e.Headers by
// the propagator; a span already in ctx becomes a link instead. With
// telemetry.WithLinksOnly, the span is a new root linked to the creation
// context. Absent or malformed headers give a new root, never an error. The
// baggage found in the headers is put into the handler's ctx.
//
// On error the span gets status Error and error.type; a recovered panic
// (*PanicError, or any error in the chain with a PanicStack() []byte method)
// adds a "panic" span event with the stack.
func ProcessTracing(s *telemetry.Subscription) event.Middleware {
	t := s.Telemetry()
	tracer, prop, linksOnly := t.Tracer(), t.Propagator(), t.LinksOnly()
	kafka := s.Info().System == telemetry.SystemKafka
	nattrs := s.SpanAttributeCount() + 2
	if kafka {
		nattrs += 3
	}
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			ambient := trace.SpanContextFromContext(ctx)
			base := ctx
			if ambient.IsValid() {
				// Hide the ambient span from Extract, so that "no creation
				// context" is told apart from "the ambient one".
				base = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
			}
			if len(e.Headers) > 0 {
				base = prop.Extract(base, propagation.MapCarrier(e.Headers))
			}
			creation := trace.SpanContextFromContext(base)

			attrs := make([]attribute.KeyValue, 0, nattrs)
			attrs = s.AppendSpanAttributes(attrs)
			attrs = append(attrs,
				telemetry.KeyMessageID.String(e.ID),
				telemetry.KeyAttempt.Int(event.Attempt(ctx)))
			if kafka && e.Record != nil {
				attrs = appendRecordAttrs(attrs, e.Record)
				if e.Key != "" {
					attrs = append(attrs, telemetry.KeyKafkaMessageKey.String(e.Key))
				}
			}
			opts := make([]trace.SpanStartOption, 0, 5)
			opts = append(opts, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			switch {
			case !creation.IsValid():
				opts = append(opts, trace.WithNewRoot())
			case linksOnly:
				opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: creation}))
			}
			if ambient.IsValid() && !ambient.Equal(creation) {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: ambient}))
			}
			ctx, span := tracer.Start(base, s.SpanName(), opts...)

			err := next(ctx, e)

			if err != nil {
				setError(span, err)
				if span.IsRecording() {
					if stack, ok := panicStack(err); ok {
						span.AddEvent(telemetry.EventPanic, trace.WithAttributes(
							telemetry.KeyExceptionType.String(telemetry.ErrorType(err)),
							telemetry.KeyExceptionMessage.String(err.Error()),
							telemetry.KeyExceptionStacktrace.String(string(stack))))
					}
				}
			}
			span.End()
			return err
		}
	}
}

// setError marks span failed: status Error with the message, and error.type.
// No RecordError: the error is in the status, and its type in error.type.
func setError(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(telemetry.KeyErrorType.String(telemetry.ErrorType(err)))
}

// appendRecordAttrs appends the Kafka location attributes. Partition ids are
// few, so the common ones come from a table rather than strconv each time.
func appendRecordAttrs(dst []attribute.KeyValue, r *event.Record) []attribute.KeyValue {
	return append(dst,
		telemetry.KeyPartition.String(partitionID(r.Partition)),
		telemetry.KeyKafkaOffset.Int64(r.Offset))
}

var partitionIDs = func() (ids [64]string) {
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}()

func partitionID(p int32) string {
	if p >= 0 && int(p) < len(partitionIDs) {
		return partitionIDs[p]
	}
	return strconv.FormatInt(int64(p), 10)
}

// PanicStacker is implemented by errors that carry the stack of a recovered
// panic; ProcessTracing records that stack in a span event.
type PanicStacker interface{ PanicStack() []byte }

func panicStack(err error) ([]byte, bool) {
	var pe *PanicError
	if errors.As(err, &pe) {
		return pe.Stack, len(pe.Stack) > 0
	}
	var ps PanicStacker
	if errors.As(err, &ps) {
		s := ps.PanicStack()
		return s, len(s) > 0
	}
	return nil, false
}
