package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream/event"
	"libx.net/eventstream/telemetry"
)

func newTel(t *testing.T, opts ...telemetry.Option) (*telemetry.Telemetry, *tracetest.SpanRecorder, *sdkmetric.ManualReader) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	tel, err := telemetry.New(append([]telemetry.Option{telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(mp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tel, sr, rd
}

func collect(t *testing.T, rd *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.ScopeName || sm.Scope.Version != telemetry.ScopeVersion || sm.Scope.SchemaURL != telemetry.SemConvSchemaURL {
			t.Errorf("unexpected scope %+v", sm.Scope)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

var info = event.SubscriptionInfo{Topic: "orders", Group: "billing", Name: "billing-1", System: telemetry.SystemMemory}

func TestDefaultPropagatorIsTraceContextAndBaggage(t *testing.T) {
	tel, err := telemetry.New()
	if err != nil {
		t.Fatal(err)
	}
	got := tel.Propagator().Fields()
	for _, f := range []string{"traceparent", "tracestate", "baggage"} {
		if !slices.Contains(got, f) {
			t.Errorf("default propagator fields %v lack %q", got, f)
		}
	}
	p := propagation.TraceContext{}
	tel, _ = telemetry.New(telemetry.WithPropagator(p))
	if tel.Propagator() != p {
		t.Error("WithPropagator ignored")
	}
}

func TestSubscriptionMetrics(t *testing.T) {
	tel, _, rd := newTel(t)
	s := tel.Subscription(info)
	ctx := context.Background()
	e := event.New("orders", 1)
	s.RecordConsumed(ctx)
	s.AddInFlight(ctx, 1)
	s.RecordDeliveryLatency(ctx, 3*time.Millisecond)
	s.RecordProcess(ctx, time.Millisecond, nil)
	s.RecordProcess(ctx, time.Millisecond, errors.New("boom"))
	s.RecordRetry(ctx, e, 1, errors.New("boom"))
	s.RecordDeadLetter(ctx, e, fmt.Errorf("wrapped: %w", context.DeadlineExceeded))
	unreg := s.ObserveQueueDepth(func() int64 { return 7 })
	unregPool := tel.ObservePool(telemetry.SystemMemory, func() (int64, int64, int64) { return 2, 8, 1 })
	unregLag := tel.ObserveLag(func(observe func(string, string, int32, int64)) { observe("orders", "billing", 3, 42) })
	defer unregPool()
	defer unregLag()

	ms := collect(t, rd)
	base := attribute.NewSet(telemetry.KeySystem.String("memory"), telemetry.KeyDestination.String("orders"), telemetry.KeyConsumerGroup.String("billing"))
	proc := attribute.NewSet(telemetry.KeySystem.String("memory"), telemetry.KeyOperationName.String("process"),
		telemetry.KeyDestination.String("orders"), telemetry.KeyConsumerGroup.String("billing"))

	wantUnits := map[string]string{
		"messaging.client.consumed.messages": "{message}",
		"messaging.process.duration":         "s",
		"eventstream.in_flight":              "{message}",
		"eventstream.delivery.latency":       "s",
		"eventstream.retries":                "{retry}",
		"eventstream.dead_letters":           "{message}",
		"eventstream.queue.depth":            "{message}",
		"eventstream.pool.running":           "{goroutine}",
		"eventstream.pool.capacity":          "{goroutine}",
		"eventstream.pool.waiting":           "{task}",
		"eventstream.consumer.lag":           "{message}",
	}
	for name, unit := range wantUnits {
		m, ok := ms[name]
		if !ok {
			t.Errorf("metric %s missing", name)
			continue
		}
		if m.Unit != unit {
			t.Errorf("%s unit = %q, want %q", name, m.Unit, unit)
		}
	}
	sumPoint := func(name string, set attribute.Set) int64 {
		t.Helper()
		var dps []metricdata.DataPoint[int64]
		switch d := ms[name].Data.(type) {
		case metricdata.Sum[int64]:
			dps = d.DataPoints
		case metricdata.Gauge[int64]:
			dps = d.DataPoints
		default:
			t.Fatalf("%s: data %T", name, d)
		}
		for _, dp := range dps {
			if dp.Attributes.Equals(&set) {
				return dp.Value
			}
		}
		t.Errorf("%s: no point with %v in %+v", name, set.ToSlice(), dps)
		return -1
	}
	if v := sumPoint("messaging.client.consumed.messages", proc); v != 1 {
		t.Errorf("consumed = %d", v)
	}
	if v := sumPoint("eventstream.in_flight", base); v != 1 {
		t.Errorf("in_flight = %d", v)
	}
	if v := sumPoint("eventstream.retries", base); v != 1 {
		t.Errorf("retries = %d", v)
	}
	dl := attribute.NewSet(append(base.ToSlice(), telemetry.KeyErrorType.String("context.DeadlineExceeded"))...)
	if v := sumPoint("eventstream.dead_letters", dl); v != 1 {
		t.Errorf("dead_letters = %d", v)
	}
	q := attribute.NewSet(append(base.ToSlice(), telemetry.KeySubscription.String("billing-1"))...)
	if v := sumPoint("eventstream.queue.depth", q); v != 7 {
		t.Errorf("queue depth = %d", v)
	}
	pool := attribute.NewSet(telemetry.KeySystem.String("memory"))
	if sumPoint("eventstream.pool.running", pool) != 2 || sumPoint("eventstream.pool.capacity", pool) != 8 || sumPoint("eventstream.pool.waiting", pool) != 1 {
		t.Error("pool gauges wrong")
	}
	lag := attribute.NewSet(telemetry.KeySystem.String("kafka"), telemetry.KeyDestination.String("orders"),
		telemetry.KeyConsumerGroup.String("billing"), telemetry.KeyPartition.String("3"))
	if v := sumPoint("eventstream.consumer.lag", lag); v != 42 {
		t.Errorf("lag = %d", v)
	}

	h := ms["messaging.process.duration"].Data.(metricdata.Histogram[float64])
	if len(h.DataPoints) != 2 {
		t.Fatalf("process.duration points = %d, want 2 (ok, error)", len(h.DataPoints))
	}
	for _, dp := range h.DataPoints {
		if !slices.Equal(dp.Bounds, telemetry.DurationBuckets) {
			t.Errorf("bounds = %v", dp.Bounds)
		}
		et, hasET := dp.Attributes.Value(telemetry.KeyErrorType)
		if hasET && et.AsString() != "*errors.errorString" {
			t.Errorf("error.type = %q", et.AsString())
		}
		if dp.Count != 1 {
			t.Errorf("count = %d", dp.Count)
		}
	}

	unreg()
	unreg() // idempotent
	ms = collect(t, rd)
	if g, ok := ms["eventstream.queue.depth"].Data.(metricdata.Gauge[int64]); ok && len(g.DataPoints) != 0 {
		t.Errorf("queue depth still observed after unregister: %+v", g.DataPoints)
	}
}

type codedErr struct{}

func (codedErr) Error() string     { return "coded" }
func (codedErr) ErrorType() string { return "E_CODED" }

type myErr struct{}

func (*myErr) Error() string { return "mine" }

func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "_OTHER"},
		{errors.New("x"), "*errors.errorString"},
		{fmt.Errorf("a: %w", &myErr{}), "*telemetry_test.myErr"},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", context.Canceled)), "context.Canceled"},
		{context.DeadlineExceeded, "context.DeadlineExceeded"},
		{fmt.Errorf("a: %w", codedErr{}), "E_CODED"},
		{fmt.Errorf("no wrap"), "*errors.errorString"},
	} {
		if got := telemetry.ErrorType(tc.err); got != tc.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestLogHandler(t *testing.T) {
	tel, _, _ := newTel(t)
	var buf bytes.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("k", "v")
	ctx, span := tel.Tracer().Start(context.Background(), "x")
	log.InfoContext(ctx, "with span")
	span.End()
	log.InfoContext(context.Background(), "without span")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", lines)
	}
	sc := span.SpanContext()
	want := fmt.Sprintf(`"trace_id":"%s","span_id":"%s"`, sc.TraceID(), sc.SpanID())
	if !strings.Contains(lines[0], want) || !strings.Contains(lines[0], `"k":"v"`) {
		t.Errorf("line %q lacks %s", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("line without span has trace_id: %q", lines[1])
	}
}

// consumed.messages and in_flight are observable instruments fed by atomic
// counters; their data must be what the synchronous instruments produced: a
// cumulative monotonic (resp. non-monotonic) Sum per attribute set, summed
// over subscriptions sharing the set, absent until the first delivery, and
// kept after a subscription ends.
func TestConsumeCountersObservable(t *testing.T) {
	tel, _, rd := newTel(t)
	ctx := context.Background()
	other := info
	other.Name = "billing-2" // same group: same metric attribute sets
	shipping := info
	shipping.Group = "shipping"

	a, b := tel.Subscription(info), tel.Subscription(other)
	_ = tel.Subscription(shipping) // no delivery: no series
	if s, ok := collect(t, rd)[telemetry.MetricConsumedMessages].Data.(metricdata.Sum[int64]); ok && len(s.DataPoints) != 0 {
		t.Errorf("consumed reported before any delivery: %+v", s.DataPoints)
	}
	a.RecordConsumed(ctx)
	a.RecordConsumed(ctx)
	b.RecordConsumed(ctx)
	a.AddInFlight(ctx, 2)
	b.AddInFlight(ctx, 1)
	a.AddInFlight(ctx, -1)

	check := func(wantConsumed, wantInFlight int64) {
		t.Helper()
		ms := collect(t, rd)
		c, ok := ms[telemetry.MetricConsumedMessages].Data.(metricdata.Sum[int64])
		if !ok || !c.IsMonotonic || c.Temporality != metricdata.CumulativeTemporality || len(c.DataPoints) != 1 {
			t.Fatalf("consumed = %+v", ms[telemetry.MetricConsumedMessages].Data)
		}
		proc := attribute.NewSet(telemetry.KeySystem.String("memory"), telemetry.KeyOperationName.String("process"),
			telemetry.KeyDestination.String("orders"), telemetry.KeyConsumerGroup.String("billing"))
		if dp := c.DataPoints[0]; dp.Value != wantConsumed || !dp.Attributes.Equals(&proc) {
			t.Errorf("consumed point = %v %v, want %d %v", dp.Value, dp.Attributes.Encoded(attribute.DefaultEncoder()),
				wantConsumed, proc.Encoded(attribute.DefaultEncoder()))
		}
		f, ok := ms[telemetry.MetricInFlight].Data.(metricdata.Sum[int64])
		if !ok || f.IsMonotonic || len(f.DataPoints) != 1 {
			t.Fatalf("in_flight = %+v", ms[telemetry.MetricInFlight].Data)
		}
		base := attribute.NewSet(telemetry.KeySystem.String("memory"), telemetry.KeyDestination.String("orders"),
			telemetry.KeyConsumerGroup.String("billing"))
		if dp := f.DataPoints[0]; dp.Value != wantInFlight || !dp.Attributes.Equals(&base) {
			t.Errorf("in_flight point = %v, want %d", dp.Value, wantInFlight)
		}
		if m := ms[telemetry.MetricConsumedMessages]; m.Unit != telemetry.UnitMessage || m.Description != telemetry.DescConsumedMessages {
			t.Errorf("consumed unit/description = %q %q", m.Unit, m.Description)
		}
	}
	check(3, 2)
	a.AddInFlight(ctx, -1)
	b.AddInFlight(ctx, -1)
	check(3, 0) // in_flight back to 0 is still reported, as an UpDownCounter's series is

	if err := tel.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tel.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	ms := collect(t, rd)
	if _, ok := ms[telemetry.MetricConsumedMessages]; ok {
		t.Error("consumed still reported after Close")
	}
}

func TestConsumeCountersConcurrent(t *testing.T) {
	tel, _, rd := newTel(t)
	ctx := context.Background()
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			s := tel.Subscription(info)
			for j := 0; j < 1000; j++ {
				s.RecordConsumed(ctx)
				s.AddInFlight(ctx, 1)
				s.AddInFlight(ctx, -1)
			}
		}()
		go func() {
			defer func() { done <- struct{}{} }()
			var rm metricdata.ResourceMetrics
			_ = rd.Collect(ctx, &rm)
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
	c := collect(t, rd)[telemetry.MetricConsumedMessages].Data.(metricdata.Sum[int64])
	if len(c.DataPoints) != 1 || c.DataPoints[0].Value != 4000 {
		t.Errorf("consumed = %+v, want one point of 4000", c.DataPoints)
	}
	_ = tel.Close()
}
