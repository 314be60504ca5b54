package telemetry

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/semconv/v1.43.0/messagingconv"

	"libx.net/eventstream/telemetry"
)

// Bucket bounds of every duration histogram, in seconds: the conventions'
// advisory buckets (5 ms … 10 s) with finer ones below, because memory-mode
// handlers finish in microseconds. GetStats's histograms use the same
// bounds, so its percentiles and a dashboard's agree.
var durationBuckets = [...]float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
}

// Units and descriptions of the library's own metrics; the messaging
// metrics take theirs from messagingconv.
const (
	unitMessage   = "{message}"
	unitRetry     = "{retry}"
	unitGoroutine = "{goroutine}"
	unitTask      = "{task}"
	unitState     = "{state}"
	unitSeconds   = "s"

	descRetries         = "Number of handler attempts that failed and were scheduled for a retry."
	descDeadLetters     = "Number of events sent to a dead-letter topic after exhausting their retries."
	descRequeues        = "Number of events a handler handed back to its consumer group (not failures)."
	descInFlight        = "Number of events currently being handled (including retries and backoff)."
	descDeliveryLatency = "Time from an event's creation (emit) to the start of its processing."
	descClockSkew       = "Number of deliveries whose emit time lies ahead of this process's clock; their delivery latency is recorded as 0."
	descQueueDepth      = "Number of events waiting in a subscription's queue (memory mode)."
	descPoolRunning     = "Number of worker goroutines currently running."
	descPoolCapacity    = "Capacity of the worker pool."
	descPoolWaiting     = "Number of tasks waiting for a free worker."
	descConsumerLag     = "Records between a group's committed offset and the partition's end (Kafka mode)."
	descCircuitState    = "State of a consumer group's circuit breaker in this process: 0 closed, 1 half-open, 2 open (the worst of its subscriptions)."
	descTimeLag         = "Age of the oldest event accepted for a consumer group and not yet handled; 0 when the group is caught up."
	descDeadLetterBlock = "Number of events whose dead letter could not be written yet; each holds its partition while the write is retried."
)

// instruments are the bus's metric instruments. Counters are observable:
// the bus counts with atomics and one callback reports them (see
// registry.observe). Histograms are synchronous, as OTel has no observable
// histogram; they get the same values as GetStats's own histograms.
type instruments struct {
	sentMessages      metric.Int64ObservableCounter
	operationDuration metric.Float64Histogram
	consumedMessages  metric.Int64ObservableCounter
	processDuration   metric.Float64Histogram

	retries         metric.Int64ObservableCounter
	requeues        metric.Int64ObservableCounter
	deadLetters     metric.Int64ObservableCounter
	inFlight        metric.Int64ObservableUpDownCounter
	deliveryLatency metric.Float64Histogram
	clockSkew       metric.Int64ObservableCounter

	queueDepth   metric.Int64ObservableGauge
	poolRunning  metric.Int64ObservableGauge
	poolCapacity metric.Int64ObservableGauge
	poolWaiting  metric.Int64ObservableGauge
	consumerLag  metric.Int64ObservableGauge
	timeLag      metric.Float64ObservableGauge
	circuitState metric.Int64ObservableGauge
	dlBlocked    metric.Int64ObservableGauge
}

func (in *instruments) init(m metric.Meter) error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	buckets := metric.WithExplicitBucketBoundaries(durationBuckets[:]...)

	sent, err := messagingconv.NewClientSentMessagesObservable(m)
	in.sentMessages = sent.Inst()
	add(err)
	opDur, err := messagingconv.NewClientOperationDuration(m, buckets)
	in.operationDuration = opDur.Inst()
	add(err)
	consumed, err := messagingconv.NewClientConsumedMessagesObservable(m)
	in.consumedMessages = consumed.Inst()
	add(err)
	procDur, err := messagingconv.NewProcessDuration(m, buckets)
	in.processDuration = procDur.Inst()
	add(err)

	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		add(err)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		add(err)
		return g
	}
	in.retries = counter(telemetry.MetricRetries, unitRetry, descRetries)
	in.requeues = counter(telemetry.MetricRequeues, unitMessage, descRequeues)
	in.deadLetters = counter(telemetry.MetricDeadLetters, unitMessage, descDeadLetters)
	in.clockSkew = counter(telemetry.MetricClockSkew, unitMessage, descClockSkew)
	in.inFlight, err = m.Int64ObservableUpDownCounter(telemetry.MetricInFlight,
		metric.WithUnit(unitMessage), metric.WithDescription(descInFlight))
	add(err)
	in.deliveryLatency, err = m.Float64Histogram(telemetry.MetricDeliveryLatency,
		metric.WithUnit(unitSeconds), metric.WithDescription(descDeliveryLatency), buckets)
	add(err)
	in.queueDepth = gauge(telemetry.MetricQueueDepth, unitMessage, descQueueDepth)
	in.poolRunning = gauge(telemetry.MetricPoolRunning, unitGoroutine, descPoolRunning)
	in.poolCapacity = gauge(telemetry.MetricPoolCapacity, unitGoroutine, descPoolCapacity)
	in.poolWaiting = gauge(telemetry.MetricPoolWaiting, unitTask, descPoolWaiting)
	in.consumerLag = gauge(telemetry.MetricConsumerLag, unitMessage, descConsumerLag)
	in.circuitState = gauge(telemetry.MetricCircuitState, unitState, descCircuitState)
	in.timeLag, err = m.Float64ObservableGauge(telemetry.MetricTimeLag,
		metric.WithUnit(unitSeconds), metric.WithDescription(descTimeLag))
	add(err)
	in.dlBlocked = gauge(telemetry.MetricDeadLetterBlocked, unitMessage, descDeadLetterBlock)
	return errors.Join(errs...)
}

// observables are the instruments the counters' callback reports.
func (in *instruments) observables() []metric.Observable {
	return []metric.Observable{in.sentMessages, in.consumedMessages, in.retries, in.requeues, in.deadLetters, in.inFlight, in.clockSkew, in.dlBlocked}
}
