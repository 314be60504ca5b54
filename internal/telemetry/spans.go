package telemetry

import (
	"errors"
	"strconv"
	"sync"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/telemetry"
)

var (
	keyAttempt       = attribute.Key(telemetry.AttrAttempt)
	keyRedelivery    = attribute.Key(telemetry.AttrRedelivery)
	keySubscription  = attribute.Key(telemetry.AttrSubscription)
	keyCausationID   = attribute.Key(telemetry.AttrCausationID)
	keyCorrelationID = attribute.Key(telemetry.AttrCorrelationID)
)

// appendIDAttrs appends messaging.message.id, the lineage ids and, on
// Kafka, the message key.
// Values that are not valid UTF-8 are left out, as the conventions say for
// keys without a canonical string form: an exporter refuses a whole batch
// over one such string.
func appendIDAttrs(dst []attribute.KeyValue, e *event.Event, withKey bool) []attribute.KeyValue {
	if utf8.ValidString(e.ID) {
		dst = append(dst, semconv.MessagingMessageID(e.ID))
	}
	if e.CausationID != "" && utf8.ValidString(e.CausationID) {
		dst = append(dst, keyCausationID.String(e.CausationID))
	}
	if e.CorrelationID != "" && utf8.ValidString(e.CorrelationID) {
		dst = append(dst, keyCorrelationID.String(e.CorrelationID))
	}
	if withKey && e.Key != "" && utf8.ValidString(e.Key) {
		dst = append(dst, semconv.MessagingKafkaMessageKey(e.Key))
	}
	return dst
}

// appendRecordAttrs appends the Kafka location attributes. Partition ids are
// few, so the common ones come from a table rather than strconv each time.
func appendRecordAttrs(dst []attribute.KeyValue, r *event.Record) []attribute.KeyValue {
	return append(dst,
		semconv.MessagingDestinationPartitionID(partitionID(r.Partition)),
		semconv.MessagingKafkaOffset(int(r.Offset)))
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

// Span start options that take no per-event value, built once (each
// trace.WithSpanKind or WithNewRoot call allocates a closure).
var (
	spanKindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	spanKindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	newRoot          = trace.WithNewRoot()
)

// startBuf is the per-span scratch space of span starts: the attributes and
// options, reused through a sync.Pool instead of being allocated for every
// span.
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
	// written into the same array; the spans of a series always have the
	// same count, so few lengths are ever built.
	attrOpts [startBufAttrs + 1]trace.SpanStartOption
}

// startBufAttrs fits the longest attribute list (a Kafka process span: 6
// static, message id, causation and correlation ids, attempt, partition,
// offset, key). Longer lists still work: append moves them to the heap.
const startBufAttrs = 14

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

// setError marks span failed: status Error with the message, and
// error.type. No RecordError: the error is in the status, its type in
// error.type.
func setError(span trace.Span, err error, errType string) {
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorTypeKey.String(errType))
}

// addPanicEvent records the stack of a recovered panic as a span event.
func addPanicEvent(span trace.Span, err error, errType string) {
	if stack, ok := panicStack(err); ok {
		span.AddEvent(telemetry.EventPanic, trace.WithAttributes(
			semconv.ExceptionType(errType),
			semconv.ExceptionMessage(err.Error()),
			semconv.ExceptionStacktrace(string(stack))))
	}
}

// panicStacker is an error that carries the stack of a recovered panic, as
// middleware.PanicError does: the method, not the type, is the contract, so
// that a recover middleware of the user's own is traced the same way.
type panicStacker interface {
	error
	PanicStack() []byte
}

func panicStack(err error) ([]byte, bool) {
	if ps, ok := errors.AsType[panicStacker](err); ok {
		s := ps.PanicStack()
		return s, len(s) > 0
	}
	return nil, false
}
