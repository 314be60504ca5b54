package telemetry

import (
	"context"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"libx.net/eventstream/telemetry"
)

// The gauges describe a running bus; each is reported by a callback of its
// own until its unregister function is called (when the subscription or the
// bus ends).

// ObservePool reports a worker pool's running, capacity and waiting figures
// (eventstream.pool.*) at each collection, until unregister is called.
func (t *Telemetry) ObservePool(f func() (running, capacity, waiting int64)) (unregister func()) {
	opt := metric.WithAttributeSet(attribute.NewSet(semconv.MessagingSystemKey.String(t.system)))
	in := &t.inst
	return t.register(func(_ context.Context, o metric.Observer) error {
		r, c, w := f()
		o.ObserveInt64(in.poolRunning, r, opt)
		o.ObserveInt64(in.poolCapacity, c, opt)
		o.ObserveInt64(in.poolWaiting, w, opt)
		return nil
	}, in.poolRunning, in.poolCapacity, in.poolWaiting)
}

// ObserveLag reports Kafka consumer lag (eventstream.consumer.lag) at each
// collection: f is called with an observe function to call once per
// topic/group/partition.
func (t *Telemetry) ObserveLag(f func(observe func(topic, group string, partition int32, lag int64))) (unregister func()) {
	g := t.inst.consumerLag
	sys := semconv.MessagingSystemKey.String(telemetry.SystemKafka)
	return t.register(func(_ context.Context, o metric.Observer) error {
		f(func(topic, group string, partition int32, lag int64) {
			o.ObserveInt64(g, lag, metric.WithAttributes(sys,
				semconv.MessagingDestinationName(topic),
				semconv.MessagingConsumerGroupName(group),
				semconv.MessagingDestinationPartitionID(strconv.FormatInt(int64(partition), 10))))
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
