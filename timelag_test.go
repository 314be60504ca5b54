package eventstream_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/telemetry"
)

// The time lag of a group is the age of its oldest event not yet handled:
// it grows while a handler holds the head of the queue, reads the same in
// GetStats and in eventstream.consumer.time_lag, and is 0 once caught up.
func TestTimeLagMemory(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	bus := quietBus(t, eventstream.DefaultConfig(), eventstream.WithMeterProvider(mp))
	defer bus.Close()
	checkTimeLag(t, bus, rd, "orders")
}

func TestKafkaTimeLag(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	bus := newKafkaBus(t, eventstreamtest.KafkaCluster(t), nil, eventstream.WithMeterProvider(mp))
	checkTimeLag(t, bus, rd, "orders")
}

func TestKafkaTimeLagRealBroker(t *testing.T) {
	brokers := eventstreamtest.RealKafkaBrokers(t)
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	bus := newKafkaBus(t, brokers, nil, eventstream.WithMeterProvider(mp))
	checkTimeLag(t, bus, rd, eventstreamtest.Topic(t))
}

func checkTimeLag(t *testing.T, bus eventstream.EventBus, rd *sdkmetric.ManualReader, topic string) {
	t.Helper()
	const hold = 300 * time.Millisecond
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		started <- struct{}{}
		<-release
		return nil
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	stats := bus.(eventstream.MemoryEventBus)
	lagOf := func() time.Duration {
		for _, r := range stats.GetStats().Rows {
			if r.Topic == topic && r.Group == "billing" {
				return r.TimeLag
			}
		}
		return -1
	}
	if got := lagOf(); got > 0 {
		t.Fatalf("time lag %v before any event", got)
	}
	emitted := time.Now()
	for i := range 3 {
		if err := bus.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	time.Sleep(hold)
	// The first event is in hand, the others wait behind it: the lag is
	// the first one's age (Kafka timestamps are whole milliseconds).
	lag := lagOf()
	if most := time.Since(emitted) + time.Millisecond; lag < hold || lag > most {
		t.Errorf("time lag %v while the head waited at least %v and at most %v", lag, hold, most)
	}
	if st := stats.GetStats(); st.TimeLag < lag {
		t.Errorf("total time lag %v, less than the row's %v", st.TimeLag, lag)
	}
	if v, ok := timeLagMetric(t, rd, topic, "billing"); !ok || v < hold.Seconds() {
		t.Errorf("%s = %v (reported %v), want at least %v", telemetry.MetricTimeLag, v, ok, hold.Seconds())
	}
	close(release)
	waitFor(t, "the group to catch up", 20*time.Second, func() bool { return lagOf() == 0 })
	if v, ok := timeLagMetric(t, rd, topic, "billing"); !ok || v != 0 {
		t.Errorf("caught up: %s = %v (reported %v), want 0", telemetry.MetricTimeLag, v, ok)
	}
}

// timeLagMetric reads eventstream.consumer.time_lag of topic and group.
func timeLagMetric(t *testing.T, rd *sdkmetric.ManualReader, topic, group string) (float64, bool) {
	t.Helper()
	m, ok := collectMetrics(t, rd)[telemetry.MetricTimeLag]
	if !ok {
		return 0, false
	}
	if m.Unit != "s" {
		t.Errorf("%s unit %q, want s", telemetry.MetricTimeLag, m.Unit)
	}
	for _, dp := range m.Data.(metricdata.Gauge[float64]).DataPoints {
		d, _ := dp.Attributes.Value(attribute.Key("messaging.destination.name"))
		g, _ := dp.Attributes.Value(attribute.Key("messaging.consumer.group.name"))
		if d.AsString() == topic && g.AsString() == group {
			return dp.Value, true
		}
	}
	return 0, false
}
