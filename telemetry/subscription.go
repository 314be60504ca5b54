package telemetry

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"libx.net/eventstream/event"
)

// Subscription is the telemetry of one subscription: its process span name
// and static span attributes, and the metric attribute sets of its consume
// side, all built once when the subscription is made.
type Subscription struct {
	t    *Telemetry
	info event.SubscriptionInfo

	spanName  string
	spanAttrs []attribute.KeyValue // system, operation type/name, destination, group, subscription

	counters  *consumeCounters      // consumed.messages and in_flight, shared per set
	processOK []metric.RecordOption // system, operation name, destination, group
	base      []metric.AddOption    // system, destination, group (library metrics)
	baseRec   []metric.RecordOption // same set
	queue     metric.ObserveOption  // base + subscription

	processKVs []attribute.KeyValue // the consumed set's attributes, for error variants
	baseKVs    []attribute.KeyValue

	processErr errorSets // error.type -> process.duration options
	deadErr    errorSets // error.type -> dead_letters options
}

// Subscription returns the telemetry of the subscription described by info.
func (t *Telemetry) Subscription(info event.SubscriptionInfo) *Subscription {
	s := &Subscription{t: t, info: info, spanName: OperationProcess + " " + info.Topic}
	s.spanAttrs = []attribute.KeyValue{
		KeySystem.String(info.System),
		KeyOperationType.String(OperationProcess),
		KeyOperationName.String(OperationProcess),
		KeyDestination.String(info.Topic),
		KeyConsumerGroup.String(info.Group),
		KeySubscription.String(info.Name),
	}
	s.processKVs = []attribute.KeyValue{
		KeySystem.String(info.System),
		KeyOperationName.String(OperationProcess),
		KeyDestination.String(info.Topic),
		KeyConsumerGroup.String(info.Group),
	}
	s.baseKVs = []attribute.KeyValue{
		KeySystem.String(info.System),
		KeyDestination.String(info.Topic),
		KeyConsumerGroup.String(info.Group),
	}
	pattrs, battrs := attribute.NewSet(s.processKVs...), attribute.NewSet(s.baseKVs...)
	s.counters = t.consumeCounters(consumeKey{info.System, info.Topic, info.Group}, pattrs, battrs)
	pset, bset := metric.WithAttributeSet(pattrs), metric.WithAttributeSet(battrs)
	s.processOK = []metric.RecordOption{pset}
	s.base = []metric.AddOption{bset}
	s.baseRec = []metric.RecordOption{bset}
	s.queue = metric.WithAttributeSet(attribute.NewSet(append(s.baseKVs[:len(s.baseKVs):len(s.baseKVs)],
		KeySubscription.String(info.Name))...))
	return s
}

// Forget drops the subscription's consume counters (consumed, in flight)
// from the reported series: for a group that ends with the subscription (a
// subscription without a group), so that subscribing and leaving in a loop
// does not grow memory. Counters shared with other live subscriptions of
// the same group stay.
func (s *Subscription) Forget() {
	if !s.t.consume.forget(consumeKey{s.info.System, s.info.Topic, s.info.Group}, s.counters) {
		return
	}
	// Its deliveries stay counted, in one series per topic for every
	// private group that ended, so totals never go down.
	kvs := []attribute.KeyValue{KeySystem.String(s.info.System), KeyOperationName.String(OperationProcess),
		KeyDestination.String(s.info.Topic), KeyConsumerGroup.String(EndedPrivateGroups)}
	base := []attribute.KeyValue{KeySystem.String(s.info.System), KeyDestination.String(s.info.Topic),
		KeyConsumerGroup.String(EndedPrivateGroups)}
	ended := s.t.consumeCounters(consumeKey{s.info.System, s.info.Topic, EndedPrivateGroups},
		attribute.NewSet(kvs...), attribute.NewSet(base...))
	ended.consumed.Add(s.counters.consumed.Load())
}

// EndedPrivateGroups is the consumer.group.name under which the deliveries
// of subscriptions without a group are counted once they ended.
const EndedPrivateGroups = "_ended"

// Info returns what the subscription was made from.
func (s *Subscription) Info() event.SubscriptionInfo { return s.info }

// Telemetry returns the Telemetry the subscription belongs to.
func (s *Subscription) Telemetry() *Telemetry { return s.t }

// SpanName returns the process span name, "process {topic}".
func (s *Subscription) SpanName() string { return s.spanName }

// AppendSpanAttributes appends the static process span attributes to dst.
func (s *Subscription) AppendSpanAttributes(dst []attribute.KeyValue) []attribute.KeyValue {
	return append(dst, s.spanAttrs...)
}

// SpanAttributeCount is the number of attributes AppendSpanAttributes appends.
func (s *Subscription) SpanAttributeCount() int { return len(s.spanAttrs) }

// RecordConsumed counts one delivery (messaging.client.consumed.messages).
// It is an atomic add, reported at the next collection; ctx is unused.
func (s *Subscription) RecordConsumed(ctx context.Context) {
	s.counters.consumed.Add(1)
}

// AddInFlight moves eventstream.in_flight by n. It is an atomic add, reported
// at the next collection; ctx is unused.
func (s *Subscription) AddInFlight(ctx context.Context, n int64) {
	s.counters.inFlight.Add(n)
}

// RecordDeliveryLatency records eventstream.delivery.latency.
func (s *Subscription) RecordDeliveryLatency(ctx context.Context, d time.Duration) {
	s.t.inst.DeliveryLatency.Record(ctx, d.Seconds(), s.baseRec...)
}

// RecordProcess records one handler attempt (messaging.process.duration),
// with error.type when err is not nil. Pass the ctx holding the process span
// so that a sampled span becomes the measurement's exemplar.
func (s *Subscription) RecordProcess(ctx context.Context, d time.Duration, err error) {
	opts := s.processOK
	if err != nil {
		opts = s.processErr.get(ErrorType(err), s.processKVs).rec
	}
	s.t.inst.ProcessDuration.Record(ctx, d.Seconds(), opts...)
}

// RecordRetry counts a failed attempt that will be retried (eventstream.retries).
func (s *Subscription) RecordRetry(ctx context.Context, e *event.Event, attempt int, err error) {
	s.t.inst.Retries.Add(ctx, 1, s.base...)
}

// RecordDeadLetter counts an event sent to the dead-letter topic
// (eventstream.dead_letters, with error.type of the last failure).
func (s *Subscription) RecordDeadLetter(ctx context.Context, e *event.Event, err error) {
	s.t.inst.DeadLetters.Add(ctx, 1, s.deadErr.get(ErrorType(err), s.baseKVs).add...)
}

// ObserveQueueDepth reports f() as the subscription's eventstream.queue.depth
// at each collection, until unregister is called.
func (s *Subscription) ObserveQueueDepth(f func() int64) (unregister func()) {
	g, opt := s.t.inst.QueueDepth, s.queue
	return s.t.register(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(g, f(), opt)
		return nil
	}, g)
}

// ObservePool reports a worker pool's running, capacity and waiting figures
// (eventstream.pool.*) at each collection, until unregister is called.
func (t *Telemetry) ObservePool(system string, f func() (running, capacity, waiting int64)) (unregister func()) {
	opt := metric.WithAttributeSet(attribute.NewSet(KeySystem.String(system)))
	in := &t.inst
	return t.register(func(_ context.Context, o metric.Observer) error {
		r, c, w := f()
		o.ObserveInt64(in.PoolRunning, r, opt)
		o.ObserveInt64(in.PoolCapacity, c, opt)
		o.ObserveInt64(in.PoolWaiting, w, opt)
		return nil
	}, in.PoolRunning, in.PoolCapacity, in.PoolWaiting)
}

// ObserveLag reports Kafka consumer lag (eventstream.consumer.lag) at each
// collection: f is called with an observe function to call once per
// topic/group/partition.
func (t *Telemetry) ObserveLag(f func(observe func(topic, group string, partition int32, lag int64))) (unregister func()) {
	g := t.inst.ConsumerLag
	sys := KeySystem.String(SystemKafka)
	return t.register(func(_ context.Context, o metric.Observer) error {
		f(func(topic, group string, partition int32, lag int64) {
			o.ObserveInt64(g, lag, metric.WithAttributes(sys,
				KeyDestination.String(topic),
				KeyConsumerGroup.String(group),
				KeyPartition.String(strconv.FormatInt(int64(partition), 10))))
		})
		return nil
	}, g)
}

func (t *Telemetry) register(cb metric.Callback, insts ...metric.Observable) func() {
	reg, err := t.meter.RegisterCallback(cb, insts...)
	if err != nil {
		otel.Handle(err)
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := reg.Unregister(); err != nil {
				otel.Handle(err)
			}
		})
	}
}

// errorSets caches, per error.type, the measurement options of a base
// attribute set plus error.type. Error types are few (Go type names), so the
// map stays small.
type errorSets struct {
	m sync.Map // error type → *errorOpts
}

type errorOpts struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func (c *errorSets) get(errType string, base []attribute.KeyValue) *errorOpts {
	if v, ok := c.m.Load(errType); ok {
		return v.(*errorOpts)
	}
	kvs := append(base[:len(base):len(base)], KeyErrorType.String(errType))
	opt := metric.WithAttributeSet(attribute.NewSet(kvs...))
	v, _ := c.m.LoadOrStore(errType, &errorOpts{add: []metric.AddOption{opt}, rec: []metric.RecordOption{opt}})
	return v.(*errorOpts)
}
