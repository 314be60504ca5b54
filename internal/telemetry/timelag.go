package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// AgeFunc reports, once per topic and consumer group, the age at now of
// the oldest event accepted and not yet handled (a transport's ReportAge).
type AgeFunc func(now time.Time, observe func(topic, group string, age time.Duration))

// ObserveTimeLag reports f's ages as eventstream.consumer.time_lag (in
// seconds) at each collection, and makes Stats read them, until unregister
// is called. f runs only when someone reads: a collection or GetStats.
func (t *Telemetry) ObserveTimeLag(f AgeFunc) (unregister func()) {
	t.ages.Store(&f)
	g, sys := t.inst.timeLag, semconv.MessagingSystemKey.String(t.system)
	unreg := t.register(func(_ context.Context, o metric.Observer) error {
		f(time.Now(), func(topic, group string, age time.Duration) {
			o.ObserveFloat64(g, age.Seconds(), metric.WithAttributeSet(attribute.NewSet(sys,
				semconv.MessagingDestinationName(topic),
				semconv.MessagingConsumerGroupName(group))))
		})
		return nil
	}, g)
	return func() {
		t.ages.CompareAndSwap(&f, nil)
		unreg()
	}
}

// timeLags returns the ages f reports now, by topic and group; nil when no
// AgeFunc is registered.
func (t *Telemetry) timeLags() map[groupKey]time.Duration {
	f := t.ages.Load()
	if f == nil {
		return nil
	}
	out := map[groupKey]time.Duration{}
	(*f)(time.Now(), func(topic, group string, age time.Duration) {
		out[groupKey{topic, group}] = max(out[groupKey{topic, group}], age)
	})
	return out
}
