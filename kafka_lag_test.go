package eventstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// A consumer stuck on one event stops fetching; the lag gauge still reads
// what the broker says (kadm's lag of the group), not the high watermark
// of its last fetch.
func TestKafkaLagWhenStalled(t *testing.T) {
	testLagWhenStalled(t, eventstreamtest.KafkaCluster(t))
}

func TestKafkaRealLagWhenStalled(t *testing.T) {
	testLagWhenStalled(t, eventstreamtest.RealKafkaBrokers(t))
}

func testLagWhenStalled(t *testing.T, brokers []string) {
	topic := eventstreamtest.Topic(t)
	group := "lag-" + topic
	createTopic(t, brokers, topic, 1)
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	b := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
		c.Memory.BufferSize = 4 // the member stops fetching soon after it stalls
		c.ShutdownTimeout = time.Second
	}, eventstream.WithMeterProvider(mp))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the bus closes
	if _, err := b.On(topic, func(ctx context.Context, _ *eventstream.Event) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	}, eventstream.WithConsumerGroup(group)); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := b.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // the member fetches those and stalls on the first
	for i := range 200 {
		if err := b.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}

	adm := kadm.NewClient(rawClient(t, brokers))
	deadline := time.Now().Add(30 * time.Second)
	for {
		lags, err := adm.Lag(context.Background(), group)
		if err != nil {
			t.Fatal(err)
		}
		want := lags[group].Lag.Total()
		got := gaugeTotal(collectMetrics(t, rd)["eventstream.consumer.lag"])
		if want >= 200 && got == want {
			t.Logf("lag gauge %d, the broker's lag %d", got, want)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag gauge reads %d; the broker's lag of the group is %d", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func gaugeTotal(m metricdata.Metrics) int64 {
	g, _ := m.Data.(metricdata.Gauge[int64])
	var n int64
	for _, dp := range g.DataPoints {
		n += dp.Value
	}
	return n
}
