package eventstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/telemetry"
)

// GetStats and GetHistory, read from the bus's own metrics and spans, match
// what happened: ten events, one that always fails (two retries, then the
// dead-letter topic) and one that fails once.
func TestStatsAndHistoryMatchWhatHappened(t *testing.T) {
	bus, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	var flaky atomic.Bool
	sub, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		var n int
		if err := e.Unmarshal(&n); err != nil {
			return err
		}
		switch {
		case n == 3:
			return errors.New("always fails")
		case n == 5 && !flaky.Swap(true):
			return errors.New("fails once")
		}
		return nil
	}, eventstream.WithConsumerGroup("billing"), eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: 2, BackoffStrategy: "constant", InitialDelay: time.Millisecond,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := bus.Emit(context.Background(), "orders", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Off(sub); err != nil {
		t.Fatal(err)
	}
	mb := bus.(eventstream.MemoryEventBus)
	st := mb.GetStats()
	row := func(topic, group string) eventstream.Stats {
		for _, r := range st.Rows {
			if r.Topic == topic && r.Group == group {
				return eventstream.Stats{Counts: r.Counts}
			}
		}
		t.Fatalf("no stats row %s/%s in %+v", topic, group, st.Rows)
		return eventstream.Stats{}
	}
	send, billing, dlq := row("orders", ""), row("orders", "billing"), row("orders.dlq", "")
	check := func(name string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	check("emitted", send.Emitted, 10)
	check("delivered", billing.Delivered, 10)
	check("succeeded attempts", billing.Succeeded, 9)
	check("failed attempts", billing.Failed, 4) // 3 for #3, 1 for #5
	check("retried", billing.Retried, 3)        // 2 for #3, 1 for #5
	check("dead-lettered", billing.DeadLettered, 1)
	check("in flight", billing.InFlight, 0)
	check("dead letters emitted", dlq.Emitted, 1)
	check("total emitted", st.Emitted, 11)
	if billing.LatencyP50 <= 0 || billing.LatencyP99 < billing.LatencyP50 {
		t.Errorf("latency percentiles p50 %v p99 %v", billing.LatencyP50, billing.LatencyP99)
	}

	h := mb.GetHistory(100)
	ops := map[string]int{}
	for _, e := range h {
		ops[e.Operation+"/"+e.Status]++
		// No tracer records (none is set up): entries carry no span ids.
		if e.TraceID != "" || e.SpanID != "" || e.EventID == "" {
			t.Errorf("history entry with span ids or without an event id: %+v", e)
		}
	}
	// 11 sends (10 + the dead letter), 13 process attempts, 4 of them failed.
	if ops["send/ok"] != 11 || ops["process/ok"] != 9 || ops["process/error"] != 4 {
		t.Errorf("history operations %v", ops)
	}
	if got := mb.GetHistory(5); len(got) != 5 {
		t.Errorf("GetHistory(5) returned %d entries", len(got))
	}
}

// A handler that ends its goroutine (runtime.Goexit, as t.FailNow does)
// made a failed attempt: GetStats counts it, the history shows it and its
// process span ends with an error, as the dead letter it leads to says.
func TestGoexitAttemptsInStatsAndHistory(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testGoexitAttempts(t, eventstream.DefaultConfig()) })
	t.Run("kafka", func(t *testing.T) { testGoexitAttempts(t, kafkaTestConfig(eventstreamtest.KafkaCluster(t))) })
}

func testGoexitAttempts(t *testing.T, cfg *eventstream.Config) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	bus := quietBus(t, cfg, eventstream.WithTracerProvider(tp))
	defer bus.Close()
	topic := eventstreamtest.Topic(t)
	const n = 40
	var dead atomic.Int64
	bus.On(topic+".dlq", func(context.Context, *eventstream.Event) error { dead.Add(1); return nil })
	bus.On(topic, func(context.Context, *eventstream.Event) error { runtime.Goexit(); return nil })
	for i := range n {
		if err := bus.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the dead letters", 20*time.Second, func() bool { return dead.Load() == n })
	mb := bus.(eventstream.MemoryEventBus)
	var row eventstream.Stats
	// The dead letter reaches its subscriber before the failed group counts
	// it (the count follows the write's acknowledgement): wait for both.
	readRow := func() {
		for _, r := range mb.GetStats().Rows {
			if r.Topic == topic && r.Group != "" {
				row.Counts = r.Counts
			}
		}
	}
	waitFor(t, "the dead letters counted", 10*time.Second, func() bool {
		readRow()
		return row.DeadLettered == n && row.InFlight == 0
	})
	if row.Delivered != n || row.Failed != n || row.Succeeded != 0 || row.DeadLettered != n || row.InFlight != 0 {
		t.Errorf("stats of the exiting subscription: %+v", row.Counts)
	}
	failed := 0
	for _, e := range mb.GetHistory(1000) {
		if e.Operation == "process" && e.Topic == topic {
			if e.Status != "error" || e.Attempt != 1 || !strings.Contains(e.Error, "Goexit") || e.SpanID == "" {
				t.Errorf("history entry %+v", e)
			}
			failed++
		}
	}
	if failed != n {
		t.Errorf("history has %d attempts on %s, want %d", failed, topic, n)
	}
	spans := 0
	for _, s := range rec.Ended() {
		if s.Name() == "process "+topic {
			spans++
			if s.Status().Code != codes.Error || attr(s, "error.type") != "*eventstream.GoexitError" {
				t.Errorf("span status %v, error.type %q", s.Status(), attr(s, "error.type"))
			}
		}
	}
	if spans != n {
		t.Errorf("%d process spans ended, want %d", spans, n)
	}
}

// GetHistory(n) returns up to n entries: none for n <= 0.
func TestGetHistoryUpToN(t *testing.T) {
	bus := quietBus(t, eventstream.DefaultConfig())
	defer bus.Close()
	for i := range 5 {
		if err := bus.Emit(context.Background(), "up-to-n", i); err != nil {
			t.Fatal(err)
		}
	}
	mb := bus.(eventstream.MemoryEventBus)
	for n, want := range map[int]int{-1: 0, 0: 0, 1: 1, 5: 5, 100: 5} {
		if got := mb.GetHistory(n); len(got) != want {
			t.Errorf("GetHistory(%d) returned %d entries, want %d", n, len(got), want)
		}
	}
}

// With a tracer that records, history entries carry the ids of the spans
// they describe; GetStats needs nothing from the MeterProvider.
func TestHistoryCarriesSpanIDs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	mp := sdkmetric.NewMeterProvider() // no reader at all
	defer mp.Shutdown(context.Background())
	bus := quietBus(t, eventstream.DefaultConfig(), eventstream.WithTracerProvider(tp), eventstream.WithMeterProvider(mp))
	done, emitted := make(chan struct{}), make(chan struct{})
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		// The send is recorded when Emit returns; the handler may run
		// before that. Wait, so that the process entry is the newest.
		<-emitted
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	close(emitted)
	<-done
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	spans := map[string]string{} // span id → name
	for _, s := range rec.Ended() {
		spans[s.SpanContext().SpanID().String()] = s.Name()
	}
	h := bus.(eventstream.MemoryEventBus).GetHistory(10)
	if len(h) != 2 {
		t.Fatalf("history %+v", h)
	}
	for _, e := range h {
		if name := spans[e.SpanID]; name != e.Operation+" orders" || e.TraceID != h[0].TraceID {
			t.Errorf("entry %+v: its span is %q", e, name)
		}
	}
	if h[0].Operation != "process" {
		t.Errorf("newest first: %+v", h)
	}
	if st := bus.(eventstream.MemoryEventBus).GetStats(); st.Emitted != 1 || st.Delivered != 1 || st.Succeeded != 1 {
		t.Errorf("stats %+v", st.Counts)
	}
}

// GetStats and the exported metrics are one set of numbers.
func TestStatsEqualMetrics(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	bus := quietBus(t, eventstream.DefaultConfig(), eventstream.WithMeterProvider(mp))
	defer bus.Close()
	var wg sync.WaitGroup
	wg.Add(24 + 5) // the events, and the dead letters of 0, 5, 10, 15, 20
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		defer wg.Done()
		var n int
		_ = e.Unmarshal(&n)
		if n%5 == 0 {
			return eventstream.Permanent(errors.New("bad order"))
		}
		return nil
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.On("orders.dlq", func(ctx context.Context, e *eventstream.Event) error { wg.Done(); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range 24 {
		if err := bus.Emit(context.Background(), "orders", i); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	waitFor(t, "the last delivery to end", 10*time.Second, func() bool {
		return bus.(eventstream.MemoryEventBus).GetStats().InFlight == 0
	})
	st := bus.(eventstream.MemoryEventBus).GetStats()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	metrics := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					metrics[m.Name] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					metrics[m.Name] += int64(dp.Count)
				}
			}
		}
	}
	for name, got := range map[string]int64{
		telemetry.MetricSentMessages:     st.Emitted + st.EmitFailed,
		telemetry.MetricConsumedMessages: st.Delivered,
		telemetry.MetricProcessDuration:  st.Succeeded + st.Failed,
		telemetry.MetricDeadLetters:      st.DeadLettered,
		telemetry.MetricInFlight:         st.InFlight,
	} {
		if metrics[name] != got {
			t.Errorf("%s = %d, GetStats says %d", name, metrics[name], got)
		}
	}
	if st.Emitted != 29 || st.Delivered != 29 || st.DeadLettered != 5 || st.Failed != 5 {
		t.Errorf("stats %+v", st.Counts)
	}
}

// The counters a reader collects after Close are all there: the
// consumed-messages and in-flight series stay until the provider shuts
// down, as a deferred provider Shutdown runs after the bus's Close.
func TestCountersReadableAfterClose(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	bus := quietBus(t, eventstream.DefaultConfig(), eventstream.WithMeterProvider(mp))
	if _, err := bus.On("orders", func(context.Context, *eventstream.Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := bus.Emit(context.Background(), "orders", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					found[m.Name] += dp.Value
				}
			}
		}
	}
	if found[telemetry.MetricConsumedMessages] != 3 || found[telemetry.MetricSentMessages] != 3 {
		t.Errorf("after Close: %v", found)
	}
	if v, ok := found[telemetry.MetricInFlight]; !ok || v != 0 {
		t.Errorf("in_flight after Close: %v %v", v, ok)
	}
	if st := bus.(eventstream.MemoryEventBus).GetStats(); st.Delivered != 3 {
		t.Errorf("GetStats after Close: %+v", st.Counts)
	}
	if h := bus.(eventstream.MemoryEventBus).GetHistory(100); len(h) != 6 {
		t.Errorf("GetHistory after Close: %d entries", len(h))
	}
}

// An emit time ahead of the clock (another host's, skewed) records a
// delivery latency of 0 and is counted as clock skew; one years behind
// cannot drag the percentiles past the top bucket's edge.
func TestDeliveryLatencyUnderClockSkew(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	var shift atomic.Int64
	skew := func(next eventstream.Handler) eventstream.Handler {
		return func(ctx context.Context, e *eventstream.Event) error {
			e.Time = e.Time.Round(0).Add(time.Duration(shift.Load())) // as a remote producer's clock would say
			return next(ctx, e)
		}
	}
	bus := quietBus(t, eventstream.DefaultConfig(), eventstream.WithMeterProvider(mp), eventstream.WithEmitMiddleware(skew))
	defer bus.Close()
	var wg sync.WaitGroup
	if _, err := bus.On("orders", func(context.Context, *eventstream.Event) error { wg.Done(); return nil }); err != nil {
		t.Fatal(err)
	}
	emit := func(d time.Duration, n int) {
		shift.Store(int64(d))
		wg.Add(n)
		for range n {
			if err := bus.Emit(context.Background(), "orders", 1); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
	}
	emit(time.Hour, 2)
	emit(-10*365*24*time.Hour, 98)
	st := bus.(eventstream.MemoryEventBus).GetStats()
	if st.DeliveryP50 != 10*time.Second || st.DeliveryP99 != 10*time.Second {
		t.Errorf("delivery p50 %v p99 %v, want the top bucket's edge, 10s", st.DeliveryP50, st.DeliveryP99)
	}
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch m.Name {
			case telemetry.MetricClockSkew:
				if v := m.Data.(metricdata.Sum[int64]).DataPoints[0].Value; v != 2 {
					t.Errorf("clock skew counted %d, want 2", v)
				}
			case telemetry.MetricDeliveryLatency:
				if dp := m.Data.(metricdata.Histogram[float64]).DataPoints[0]; dp.Min != metricdata.NewExtrema(0.0) || dp.Count != 100 {
					t.Errorf("delivery latency min %v count %d: negative latencies must record 0", dp.Min, dp.Count)
				}
			}
		}
	}
}

// The debug page keeps answering after Close, with what was measured.
func TestDebugHandlerAfterClose(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	b.On("x", func(context.Context, *eventstream.Event) error { return nil })
	b.Emit(context.Background(), "x", 1)
	b.Close()
	srv := httptest.NewServer(eventstream.DebugHandler(b))
	defer srv.Close()
	for _, path := range []string{"/", "/events", "/stats", "/topology", "/?format=json"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s after Close: %s", path, resp.Status)
		}
	}
}

// History must not keep events alive: 200 events of 256 KiB leave the heap
// about where it was.
func TestHistoryDoesNotPinPayloads(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	var n atomic.Int64
	b.On("big", func(context.Context, *eventstream.Event) error { n.Add(1); return nil })
	before := heapInUse()
	for range 200 {
		b.Emit(context.Background(), "big", make([]byte, 256<<10))
	}
	waitFor(t, "delivery", 10*time.Second, func() bool { return n.Load() == 200 })
	if grow := int64(heapInUse()) - int64(before); grow > 8<<20 {
		t.Fatalf("heap grew by %d MiB after 200 events of 256 KiB", grow>>20)
	}
	if h := b.(eventstream.MemoryEventBus).GetHistory(1000); len(h) < 400 {
		t.Fatalf("history holds %d entries, want 400", len(h))
	}
}
