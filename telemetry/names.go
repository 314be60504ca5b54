// Package telemetry holds EventStream's OpenTelemetry names and plumbing:
// span and metric names, attribute keys, the instruments, the propagation
// carrier and a slog handler that adds trace ids. Every name the library
// emits is defined in this file, so that a bump of the (still Development)
// messaging conventions is one change.
package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ScopeName is the instrumentation scope of every span and metric the
// library records; ScopeVersion is its version.
const (
	ScopeName    = "libx.net/eventstream"
	ScopeVersion = "0.1.0"
)

// SemConvSchemaURL is the schema of the semantic conventions used.
const SemConvSchemaURL = semconv.SchemaURL

// messaging.system values.
const (
	SystemMemory = "memory"
	SystemKafka  = "kafka"
)

// messaging.operation.name values (the span name's first word).
const (
	OperationSend    = "send"
	OperationProcess = "process"
)

// The four messaging metrics of the OpenTelemetry conventions.
const (
	MetricSentMessages      = "messaging.client.sent.messages"      // Int64Counter {message}
	MetricOperationDuration = "messaging.client.operation.duration" // Float64Histogram s
	MetricConsumedMessages  = "messaging.client.consumed.messages"  // Int64Counter {message}
	MetricProcessDuration   = "messaging.process.duration"          // Float64Histogram s
)

// The library's own metrics.
const (
	MetricRetries         = "eventstream.retries"          // Int64Counter {retry}
	MetricDeadLetters     = "eventstream.dead_letters"     // Int64Counter {message}
	MetricInFlight        = "eventstream.in_flight"        // Int64UpDownCounter {message}
	MetricQueueDepth      = "eventstream.queue.depth"      // Int64ObservableGauge {message}, memory mode
	MetricPoolRunning     = "eventstream.pool.running"     // Int64ObservableGauge {goroutine}
	MetricPoolCapacity    = "eventstream.pool.capacity"    // Int64ObservableGauge {goroutine}
	MetricPoolWaiting     = "eventstream.pool.waiting"     // Int64ObservableGauge {task}
	MetricConsumerLag     = "eventstream.consumer.lag"     // Int64ObservableGauge {message}, Kafka mode
	MetricDeliveryLatency = "eventstream.delivery.latency" // Float64Histogram s, emit time → processing start
)

// Attribute keys: the conventions' where they exist, eventstream.* otherwise.
var (
	KeySystem           = semconv.MessagingSystemKey
	KeyOperationType    = semconv.MessagingOperationTypeKey
	KeyOperationName    = semconv.MessagingOperationNameKey
	KeyDestination      = semconv.MessagingDestinationNameKey
	KeyMessageID        = semconv.MessagingMessageIDKey
	KeyConsumerGroup    = semconv.MessagingConsumerGroupNameKey
	KeyPartition        = semconv.MessagingDestinationPartitionIDKey
	KeyKafkaOffset      = semconv.MessagingKafkaOffsetKey
	KeyKafkaMessageKey  = semconv.MessagingKafkaMessageKeyKey
	KeyServerAddress    = semconv.ServerAddressKey
	KeyServerPort       = semconv.ServerPortKey
	KeyErrorType        = semconv.ErrorTypeKey
	KeyAttempt          = attribute.Key("eventstream.attempt")
	KeySubscription     = attribute.Key("eventstream.subscription")
	KeyDeadLetterReason = attribute.Key("eventstream.dead_letter.reason")
)

// ErrorTypeOther is the error.type fallback.
const ErrorTypeOther = "_OTHER"

// Bucket boundaries, passed explicitly. The conventions' advisory buckets
// start at 5 ms; memory-mode handlers often finish in microseconds, so finer
// buckets come first.
var DurationBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
}

// Instrument units and descriptions (the conventions' wording for the
// messaging metrics).
const (
	UnitMessage   = "{message}"
	UnitRetry     = "{retry}"
	UnitGoroutine = "{goroutine}"
	UnitTask      = "{task}"
	UnitSeconds   = "s"

	DescSentMessages      = "Number of messages producer attempted to send to the broker."
	DescOperationDuration = "Duration of messaging operation initiated by a producer or consumer client."
	DescConsumedMessages  = "Number of messages that were delivered to the application."
	DescProcessDuration   = "Duration of processing operation."
	DescRetries           = "Number of handler attempts that failed and were scheduled for a retry."
	DescDeadLetters       = "Number of events sent to a dead-letter topic after exhausting their retries."
	DescInFlight          = "Number of events currently being handled (including retries and backoff)."
	DescQueueDepth        = "Number of events waiting in a subscription's queue (memory mode)."
	DescPoolRunning       = "Number of worker goroutines currently running."
	DescPoolCapacity      = "Capacity of the worker pool."
	DescPoolWaiting       = "Number of tasks waiting for a free worker."
	DescConsumerLag       = "Records between a group's committed offset and the partition's end (Kafka mode)."
	DescDeliveryLatency   = "Time from an event's creation (emit) to the start of its processing."
)

// Span event recorded on a process span whose handler panicked, and the
// attributes it carries (the conventions' exception.* keys).
const EventPanic = "panic"

var (
	KeyExceptionType       = semconv.ExceptionTypeKey
	KeyExceptionMessage    = semconv.ExceptionMessageKey
	KeyExceptionStacktrace = semconv.ExceptionStacktraceKey
)

// Header keys written by the default propagator (TraceContext + Baggage).
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
	HeaderBaggage     = "baggage"
)
