package middleware

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"unicode/utf8"

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
			sb := getStartBuf()
			attrs := d.AppendSpanAttributes(sb.attrs[:0])
			attrs = appendIDAttrs(attrs, e, kafka)
			opts := append(sb.opts[:0], spanKindProducer, sb.attributes(attrs))
			ctx, span := tracer.Start(ctx, d.SpanName(), opts...)
			sb.put(opts)
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

			sb := getStartBuf()
			attrs := s.AppendSpanAttributes(sb.attrs[:0])
			attrs = append(attrs, telemetry.KeyAttempt.Int(event.Attempt(ctx)))
			if kafka && e.Record != nil {
				attrs = appendRecordAttrs(attrs, e.Record)
			}
			attrs = appendIDAttrs(attrs, e, kafka && e.Record != nil)
			opts := append(sb.opts[:0], spanKindConsumer, sb.attributes(attrs))
			switch {
			case !creation.IsValid():
				opts = append(opts, newRoot)
			case linksOnly:
				opts = append(opts, newRoot, trace.WithLinks(trace.Link{SpanContext: creation}))
			}
			if ambient.IsValid() && !ambient.Equal(creation) {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: ambient}))
			}
			ctx, span := tracer.Start(base, s.SpanName(), opts...)
			sb.put(opts)

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

// appendIDAttrs appends messaging.message.id and, on Kafka, the message key.
// Values that are not valid UTF-8 are left out, as the conventions say for
// keys without a canonical string form: an exporter refuses a whole batch
// over one such string.
func appendIDAttrs(dst []attribute.KeyValue, e *event.Event, withKey bool) []attribute.KeyValue {
	if utf8.ValidString(e.ID) {
		dst = append(dst, telemetry.KeyMessageID.String(e.ID))
	}
	if withKey && e.Key != "" && utf8.ValidString(e.Key) {
		dst = append(dst, telemetry.KeyKafkaMessageKey.String(e.Key))
	}
	return dst
}

// Span start options that take no per-event value, built once (each
// trace.WithSpanKind or WithNewRoot call allocates a closure).
var (
	spanKindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	spanKindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	newRoot          = trace.WithNewRoot()
)

// startBuf is the per-span scratch space of the tracing middleware: the span
// start attributes and options, reused through a sync.Pool instead of being
// allocated for every span.
//
// Reuse is safe because options are opaque (their methods are unexported):
// a Tracer can only read them through trace.NewSpanStartConfig, which copies
// the attributes into a SpanConfig of its own, and it does so within Start.
// Nothing else holds the buffer once Start has returned.
type startBuf struct {
	attrs [startBufAttrs]attribute.KeyValue
	opts  [6]trace.SpanStartOption

	// attrOpts[n] is trace.WithAttributes(attrs[:n]...), kept because boxing
	// the slice into an option allocates. It stays valid while attributes are
	// written into the same array; the spans of a subscription or destination
	// always have the same count, so few lengths are ever built.
	attrOpts [startBufAttrs + 1]trace.SpanStartOption
}

// startBufAttrs fits the longest attribute list (a Kafka process span: 6
// static, message id, attempt, partition, offset, key). Longer lists still
// work: append moves them to the heap.
const startBufAttrs = 12

var startBufs = sync.Pool{New: func() any { return new(startBuf) }}

func getStartBuf() *startBuf { return startBufs.Get().(*startBuf) }

// attributes returns trace.WithAttributes(attrs...), cached when attrs is
// the buffer's own array.
func (b *startBuf) attributes(attrs []attribute.KeyValue) trace.SpanStartOption {
	if len(attrs) == 0 || &attrs[0] != &b.attrs[0] {
		return trace.WithAttributes(attrs...) // moved to the heap: not cached
	}
	opt := b.attrOpts[len(attrs)]
	if opt == nil {
		opt = trace.WithAttributes(b.attrs[:len(attrs)]...)
		b.attrOpts[len(attrs)] = opt
	}
	return opt
}

// put returns b to the pool once Start has returned. Options beyond the
// cached ones (links) are cleared so that the pool holds no span contexts.
func (b *startBuf) put(opts []trace.SpanStartOption) {
	if len(opts) > 2 {
		clear(opts[2:])
	}
	startBufs.Put(b)
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
