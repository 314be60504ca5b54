package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ObserveCircuits reports circuit-breaker states as
// eventstream.circuit.state at each collection: f is called with an
// observe function to call once per topic and group that has a breaker.
func (t *Telemetry) ObserveCircuits(f func(observe func(topic, group string, state int64))) (unregister func()) {
	g, sys := t.inst.circuitState, semconv.MessagingSystemKey.String(t.system)
	return t.register(func(_ context.Context, o metric.Observer) error {
		f(func(topic, group string, state int64) {
			o.ObserveInt64(g, state, metric.WithAttributeSet(attribute.NewSet(sys,
				semconv.MessagingDestinationName(topic),
				semconv.MessagingConsumerGroupName(group))))
		})
		return nil
	}, g)
}
