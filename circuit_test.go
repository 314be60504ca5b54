package eventstream_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/telemetry"
)

// flaky is a handler whose dependency is down until up is set.
type flaky struct {
	up      atomic.Bool
	calls   atomic.Int64
	handled atomic.Int64
}

func (f *flaky) handle(context.Context, *eventstream.Event) error {
	f.calls.Add(1)
	if !f.up.Load() {
		return errors.New("database down")
	}
	f.handled.Add(1)
	return nil
}

func circuitState(t *testing.T, rd *sdkmetric.ManualReader, topic, group string) (int64, bool) {
	t.Helper()
	m, ok := collectMetrics(t, rd)[telemetry.MetricCircuitState]
	if !ok {
		return 0, false
	}
	for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
		tp, _ := dp.Attributes.Value("messaging.destination.name")
		g, _ := dp.Attributes.Value("messaging.consumer.group.name")
		if tp.AsString() == topic && g.AsString() == group {
			return dp.Value, true
		}
	}
	return 0, false
}

// An outage opens the circuit after the threshold: the events behind it
// are held, neither retried nor dead-lettered; after the cool-down one
// event probes, and once it succeeds every held event is handled. The
// state is logged, exported and shown on the debug page.
func TestCircuitBreakerHoldsDuringOutage(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testCircuitOutage(t, eventstream.DefaultConfig(), "orders", "billing") })
	t.Run("kafka", func(t *testing.T) {
		testCircuitOutage(t, kafkaTestConfig(eventstreamtest.KafkaCluster(t)), "orders", "billing")
	})
}

func testCircuitOutage(t *testing.T, cfg *eventstream.Config, topic, group string) {
	const coolDown = 300 * time.Millisecond
	cfg.Retry = &eventstream.RetryPolicy{} // one attempt: a failure is a dead letter at once
	var logs syncBuffer
	rd := sdkmetric.NewManualReader()
	b, err := eventstream.New(cfg, eventstream.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))),
		eventstream.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var dead atomic.Int64
	if _, err := b.On(topic+".dlq", func(context.Context, *eventstream.Event) error { dead.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	var f flaky
	if _, err := b.On(topic, f.handle, eventstream.WithConsumerGroup(group),
		eventstream.WithCircuitBreaker(eventstream.CircuitBreaker{ConsecutiveFailures: 3, CoolDown: coolDown})); err != nil {
		t.Fatal(err)
	}
	const n = 40
	start := time.Now()
	for i := range n {
		if err := b.Emit(context.Background(), topic, i, eventstream.WithKey("k")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the circuit to open", 20*time.Second, func() bool {
		st, _ := circuitState(t, rd, topic, group)
		return st == 2
	})
	page := httptest.NewRecorder()
	eventstream.DebugHandler(b).ServeHTTP(page, httptest.NewRequest("GET", "/topology", nil))
	if !strings.Contains(page.Body.String(), `"circuit": "open"`) {
		t.Errorf("topology does not show the open circuit:\n%s", page.Body)
	}
	time.Sleep(2 * coolDown) // probes fail, the circuit opens again
	// At most one probe per cool-down: the 3 attempts that opened
	// the circuit, then a probe every coolDown at the most.
	bound := 3 + int64(time.Since(start)/coolDown) + 1
	f.up.Store(true)
	if c := f.calls.Load(); c > bound {
		t.Errorf("%d attempts during the outage, want at most %d (3 that opened the circuit, then one probe per cool-down)", c, bound)
	}
	waitFor(t, "every event handled or dead-lettered", 20*time.Second, func() bool {
		return f.handled.Load()+dead.Load() == n
	})
	if d := dead.Load(); d > bound {
		t.Errorf("%d dead letters, want at most %d: only events that ran and failed, none of those held", d, bound)
	}
	waitFor(t, "the circuit to close", 5*time.Second, func() bool {
		st, ok := circuitState(t, rd, topic, group)
		return ok && st == 0
	})
	for _, want := range []string{"circuit open", "circuit half-open", "circuit closed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// While the circuit is open the subscription's lanes hold their events, so
// memory mode's Emit meets backpressure as with a slow handler.
func TestCircuitBreakerBackpressure(t *testing.T) {
	cfg := smallConfig(2, 2)
	cfg.Retry = &eventstream.RetryPolicy{}
	cfg.ShutdownTimeout = 100 * time.Millisecond
	b := quietBus(t, cfg)
	defer b.Close()
	var f flaky
	if _, err := b.On("orders", f.handle, eventstream.WithCircuitBreaker(eventstream.CircuitBreaker{ConsecutiveFailures: 1, CoolDown: time.Hour})); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 { // fails and opens; held; queued
		if err := b.Emit(ctx, "orders", i); err != nil {
			t.Fatalf("Emit %d: %v", i, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	waitFor(t, "the first attempt", 5*time.Second, func() bool { return f.calls.Load() == 1 })
	if err := b.Emit(short, "orders", 3); !errors.Is(err, eventstream.ErrQueueFull) {
		t.Errorf("Emit while the circuit is open: %v, want ErrQueueFull", err)
	}
	if c := f.calls.Load(); c != 1 {
		t.Errorf("%d attempts, want 1 (the rest held)", c)
	}
}

func TestCircuitBreakerConfig(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	for _, c := range []eventstream.CircuitBreaker{{ConsecutiveFailures: -1}, {FailureRatio: 1.5}, {CoolDown: -time.Second}, {Window: -1}} {
		_, err := b.On("t", func(context.Context, *eventstream.Event) error { return nil }, eventstream.WithCircuitBreaker(c))
		var ce *eventstream.ConfigError
		if !errors.As(err, &ce) || ce.Field != "WithCircuitBreaker" {
			t.Errorf("%+v: err = %v, want a ConfigError on WithCircuitBreaker", c, err)
		}
	}
}

// An open circuit holds its events without a worker: on a pool of one,
// another subscription goes on being served.
func TestCircuitBreakerHoldsNoWorker(t *testing.T) {
	tune := func(cfg *eventstream.Config) {
		cfg.Pool.Size = 1
		cfg.Retry = &eventstream.RetryPolicy{}
		cfg.ShutdownTimeout = 100 * time.Millisecond
	}
	eachMode(t, tune, func(t *testing.T, b eventstream.EventBus) {
		var f flaky
		if _, err := b.On("payments", f.handle, eventstream.WithCircuitBreaker(eventstream.CircuitBreaker{ConsecutiveFailures: 1, CoolDown: time.Hour})); err != nil {
			t.Fatal(err)
		}
		other := newEvents()
		if _, err := b.On("audit", other.handler); err != nil {
			t.Fatal(err)
		}
		for i := range 5 { // the first fails and opens the circuit; the rest are held
			if err := b.Emit(context.Background(), "payments", i, eventstream.WithKey("k")); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the first attempt", 20*time.Second, func() bool { return f.calls.Load() == 1 })
		if err := b.Emit(context.Background(), "audit", "still served"); err != nil {
			t.Fatal(err)
		}
		other.wait(t, 1)
		if c := f.calls.Load(); c != 1 {
			t.Errorf("%d attempts on the open circuit, want 1", c)
		}
	})
}
