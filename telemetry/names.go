// Package telemetry names what EventStream records: its instrumentation
// scope, span and metric names, the attribute keys of its own namespace, and
// a slog handler that adds trace ids to log records. Every name the library
// emits is defined here, so that a dashboard or an alert can be written
// against these constants, and a bump of the (still Development) messaging
// conventions is one change.
//
// Attribute keys from the OpenTelemetry conventions (messaging.system,
// messaging.destination.name, error.type, …) are those of
// go.opentelemetry.io/otel/semconv/v1.43.0.
package telemetry

// ScopeName is the instrumentation scope of every span and metric the
// library records; ScopeVersion is its version.
const (
	ScopeName    = "libx.net/eventstream"
	ScopeVersion = "0.1.0"
)

// messaging.system values.
const (
	SystemMemory = "memory"
	SystemKafka  = "kafka"
)

// messaging.operation.name values, also the first word of span names
// ("send {topic}", "process {topic}").
const (
	OperationSend    = "send"
	OperationProcess = "process"
)

// The four messaging metrics of the OpenTelemetry conventions.
const (
	MetricSentMessages      = "messaging.client.sent.messages"      // counter {message}
	MetricOperationDuration = "messaging.client.operation.duration" // histogram s
	MetricConsumedMessages  = "messaging.client.consumed.messages"  // counter {message}
	MetricProcessDuration   = "messaging.process.duration"          // histogram s
)

// The library's own metrics.
const (
	MetricRetries         = "eventstream.retries"             // counter {retry}
	MetricRequeues        = "eventstream.requeues"            // counter {message}, events handed back
	MetricDeadLetters     = "eventstream.dead_letters"        // counter {message}
	MetricInFlight        = "eventstream.in_flight"           // up-down counter {message}
	MetricDeliveryLatency = "eventstream.delivery.latency"    // histogram s, emit time → processing start
	MetricClockSkew       = "eventstream.delivery.clock_skew" // counter {message}, emit time in the future
	MetricQueueDepth      = "eventstream.queue.depth"         // gauge {message}, events queued or in hand (Kafka: fetched, not yet handled)
	MetricPoolRunning     = "eventstream.pool.running"        // gauge {goroutine}
	MetricPoolCapacity    = "eventstream.pool.capacity"       // gauge {goroutine}
	MetricPoolWaiting     = "eventstream.pool.waiting"        // gauge {task}
	MetricConsumerLag     = "eventstream.consumer.lag"        // gauge {message}, Kafka mode
	MetricTimeLag         = "eventstream.consumer.time_lag"   // gauge s, age of the oldest event not yet handled
	MetricCircuitState    = "eventstream.circuit.state"       // gauge {state}: 0 closed, 1 half-open, 2 open
	// MetricDeadLetterBlocked counts the events whose dead letter could not
	// be written yet: each holds its partition (Kafka) while the write is
	// retried.
	MetricDeadLetterBlocked = "eventstream.dead_letter.blocked" // gauge {message}
)

// Attribute keys of the library's own namespace, on process spans
// (attempt, subscription) and on the queue-depth gauge (subscription).
const (
	AttrAttempt      = "eventstream.attempt"
	AttrSubscription = "eventstream.subscription"
	// AttrRedelivery is how often the event was handed back before this
	// delivery (Event.Redelivery); set when above 0.
	AttrRedelivery = "eventstream.redelivery"
	// AttrRequeueReason is the reason of a hand-back, on the process
	// span's EventRequeue event.
	AttrRequeueReason = "eventstream.requeue.reason"
)

// EventRequeue is the span event of an attempt whose handler handed its
// event back (eventstream.Requeue): not an error.
const EventRequeue = "eventstream.requeue"

// Lineage attribute keys, on send and process spans: the id of the event
// whose handler emitted the span's event (absent for an event that starts
// its chain), and the id of its chain's first event (or the name its
// emitter gave the chain). A trace query on the correlation id finds a
// whole chain, across traces.
const (
	AttrCausationID   = "eventstream.causation_id"
	AttrCorrelationID = "eventstream.correlation_id"
)

// EndedPrivateGroups is the messaging.consumer.group.name under which the
// deliveries of subscriptions without a group are counted once they ended,
// so that their totals stay while their series go.
const EndedPrivateGroups = "_ended"

// EventPanic is the span event recorded on a process span whose handler
// panicked; it carries exception.type, exception.message and
// exception.stacktrace.
const EventPanic = "panic"
