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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/middleware"
	"libx.net/eventstream/telemetry"
)

type rig struct {
	tel *itel.Telemetry
	sr  *tracetest.SpanRecorder
	rd  *sdkmetric.ManualReader
	sub *itel.Subscription
}

// newRig builds the telemetry of a bus of the given system over SDK
// providers that record everything, with history and stats on.
func newRig(t testing.TB, system string, edit ...func(*itel.Config)) *rig {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	cfg := itel.Config{TracerProvider: tp, MeterProvider: mp, System: system,
		InProcess: system == telemetry.SystemMemory, History: 100, Stats: true}
	for _, f := range edit {
		f(&cfg)
	}
	tel, err := itel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{tel: tel, sr: sr, rd: rd, sub: tel.Subscription("orders", "billing", "billing#1", false)}
}

// emit runs the emit chain's measurement point, then transport, for e.
func (r *rig) emit(ctx context.Context, e *event.Event, transport event.Handler) error {
	return event.Chain(transport, r.tel.Emit())(ctx, e)
}

// process runs one attempt of the consume chain's inner part.
func (r *rig) process(ctx context.Context, e *event.Event, attempt int, h event.Handler) error {
	return processWith(r.sub, ctx, e, attempt, h)
}

func processWith(sub *itel.Subscription, ctx context.Context, e *event.Event, attempt int, h event.Handler) error {
	if attempt > 1 {
		ctx = eventmeta.WithAttempt(ctx, attempt)
	}
	return event.Chain(h, sub.Process, middleware.Recover())(ctx, e)
}

func nop(context.Context, *event.Event) error { return nil }

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]any) {
	t.Helper()
	got := attrMap(s.Attributes())
	for k, v := range want {
		gv, ok := got[attribute.Key(k)]
		if !ok {
			t.Errorf("span %q: attribute %s missing (have %v)", s.Name(), k, s.Attributes())
			continue
		}
		if gv.AsInterface() != v {
			t.Errorf("span %q: %s = %v (%T), want %v (%T)", s.Name(), k, gv.AsInterface(), gv.AsInterface(), v, v)
		}
	}
}

func TestSendProcessOneTrace(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	e := event.New("orders", map[string]int{"n": 1})
	if err := r.emit(context.Background(), e, nop); err != nil {
		t.Fatal(err)
	}
	if len(e.Headers) != 0 {
		t.Fatalf("memory mode wrote headers %v: the creation context rides on the event", e.Headers)
	}
	if err := r.process(context.Background(), e, 1, nop); err != nil {
		t.Fatal(err)
	}
	spans := r.sr.Ended()
	if len(spans) != 2 {
		t.Fatalf("spans = %d", len(spans))
	}
	send, proc := spans[0], spans[1]
	if send.Name() != "send orders" || send.SpanKind() != trace.SpanKindProducer {
		t.Errorf("send span %q kind %v", send.Name(), send.SpanKind())
	}
	if proc.Name() != "process orders" || proc.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("process span %q kind %v", proc.Name(), proc.SpanKind())
	}
	if proc.Parent().SpanID() != send.SpanContext().SpanID() || proc.SpanContext().TraceID() != send.SpanContext().TraceID() {
		t.Errorf("process parent %v, want send %v", proc.Parent(), send.SpanContext())
	}
	if proc.Parent().IsRemote() {
		t.Error("in one process the parent is the local send span, not a remote one")
	}
	if s := send.InstrumentationScope(); s.Name != telemetry.ScopeName || s.Version != telemetry.ScopeVersion || s.SchemaURL != semconv.SchemaURL {
		t.Errorf("scope %+v", s)
	}
	wantAttrs(t, send, map[string]any{
		"messaging.system": "memory", "messaging.operation.type": "send", "messaging.operation.name": "send",
		"messaging.destination.name": "orders", "messaging.message.id": e.ID,
	})
	wantAttrs(t, proc, map[string]any{
		"messaging.system": "memory", "messaging.operation.type": "process", "messaging.operation.name": "process",
		"messaging.destination.name": "orders", "messaging.message.id": e.ID,
		"messaging.consumer.group.name": "billing", "eventstream.attempt": int64(1), "eventstream.subscription": "billing#1",
	})
	if _, ok := attrMap(send.Attributes())["messaging.kafka.message.key"]; ok {
		t.Error("memory send span has a kafka key")
	}
	if send.Status().Code != codes.Unset || proc.Status().Code != codes.Unset {
		t.Error("success spans must not have an error status")
	}
}

func TestKafkaAttributes(t *testing.T) {
	r := newRig(t, telemetry.SystemKafka, func(c *itel.Config) { c.ServerAddress, c.ServerPort = "broker1", 9092 })
	e := event.New("orders", 1)
	e.Key = "cust-7"
	err := r.emit(context.Background(), e, func(ctx context.Context, e *event.Event) error {
		e.Record = &event.Record{Partition: 2, Offset: 41}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Record = &event.Record{Partition: 2, Offset: 41}
	if err := r.process(context.Background(), e, 1, nop); err != nil {
		t.Fatal(err)
	}
	spans := r.sr.Ended()
	kafka := map[string]any{"messaging.system": "kafka", "messaging.destination.partition.id": "2",
		"messaging.kafka.offset": int64(41), "messaging.kafka.message.key": "cust-7"}
	wantAttrs(t, spans[0], kafka)
	wantAttrs(t, spans[0], map[string]any{"server.address": "broker1", "server.port": int64(9092)})
	wantAttrs(t, spans[1], kafka)
}

func TestRetriedEventIsOneTrace(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	e := event.New("orders", 1)
	_ = r.emit(context.Background(), e, nop)
	boom := errors.New("boom")
	fail := func(context.Context, *event.Event) error { return boom }
	if err := r.process(context.Background(), e, 1, fail); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if err := r.process(context.Background(), e, 2, nop); err != nil {
		t.Fatal(err)
	}
	spans := r.sr.Ended()
	if len(spans) != 3 {
		t.Fatalf("spans = %d", len(spans))
	}
	send := spans[0]
	for i, p := range spans[1:] {
		if p.SpanContext().TraceID() != send.SpanContext().TraceID() || p.Parent().SpanID() != send.SpanContext().SpanID() {
			t.Errorf("attempt %d not a child of the send span", i+1)
		}
		wantAttrs(t, p, map[string]any{"eventstream.attempt": int64(i + 1)})
	}
	first := spans[1]
	if first.Status().Code != codes.Error || first.Status().Description != "boom" {
		t.Errorf("failed attempt status %+v", first.Status())
	}
	wantAttrs(t, first, map[string]any{"error.type": "*errors.errorString"})
	if len(first.Events()) != 0 {
		t.Errorf("RecordError must not be used: events %v", first.Events())
	}
	if _, ok := attrMap(spans[2].Attributes())["error.type"]; ok {
		t.Error("successful attempt has error.type")
	}
}

func TestDeadLetterSendJoinsOriginalTrace(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	e := event.New("orders", 1)
	_ = r.emit(context.Background(), e, nop)
	// The bus's dead-letter path: the creation context, then the DLQ event's emit under it.
	orig := r.tel.WithCreation(context.Background(), e)
	dlq := event.New("orders.dlq", 1)
	_ = r.emit(orig, dlq, nop)
	spans := r.sr.Ended()
	if spans[1].Name() != "send orders.dlq" || spans[1].Parent().SpanID() != spans[0].SpanContext().SpanID() ||
		spans[1].SpanContext().TraceID() != spans[0].SpanContext().TraceID() {
		t.Errorf("dlq send span %q parent %v, want child of %v", spans[1].Name(), spans[1].Parent(), spans[0].SpanContext())
	}
}

// ambientSpan starts a span, recorded by the rig, that is not the event's.
func ambientSpan(r *rig) (context.Context, trace.Span) {
	var tp trace.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.sr))
	return tp.Tracer("ambient").Start(context.Background(), "ambient")
}

func TestLinksOnly(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory, func(c *itel.Config) { c.LinksOnly = true })
	e := event.New("orders", 1)
	_ = r.emit(context.Background(), e, nop)
	_ = r.process(context.Background(), e, 1, nop)
	spans := r.sr.Ended()
	send, proc := spans[0], spans[1]
	if proc.Parent().IsValid() || proc.SpanContext().TraceID() == send.SpanContext().TraceID() {
		t.Errorf("links-only process span should be a new root, parent %v", proc.Parent())
	}
	if l := proc.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("links %+v, want the send span", l)
	}
}

func TestAmbientSpanBecomesLink(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	e := event.New("orders", 1)
	_ = r.emit(context.Background(), e, nop)
	ctx, amb := ambientSpan(r)
	_ = r.process(ctx, e, 1, nop)
	amb.End()
	spans := r.sr.Ended()
	send, proc := spans[0], spans[1]
	if proc.Parent().SpanID() != send.SpanContext().SpanID() {
		t.Errorf("parent %v, want send span", proc.Parent())
	}
	if l := proc.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != amb.SpanContext().SpanID() {
		t.Errorf("links %+v, want the ambient span", l)
	}
}

func TestMalformedOrAbsentTraceparent(t *testing.T) {
	for name, headers := range map[string]map[string]string{
		"absent":    nil,
		"empty":     {},
		"malformed": {"traceparent": "00-zzzz-not-a-trace-01", "baggage": "%%%;;"},
		"zero ids":  {"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, telemetry.SystemMemory)
			e := event.New("orders", 1)
			e.Headers = headers
			ctx, amb := ambientSpan(r)
			called := false
			err := r.process(ctx, e, 1, func(ctx context.Context, _ *event.Event) error {
				called = trace.SpanContextFromContext(ctx).IsValid()
				return nil
			})
			amb.End()
			if err != nil || !called {
				t.Fatalf("err %v, handler saw span %v", err, called)
			}
			proc := r.sr.Ended()[0]
			if proc.Parent().IsValid() {
				t.Errorf("want new root, parent %v", proc.Parent())
			}
			if proc.Status().Code == codes.Error {
				t.Error("malformed headers must not fail the span")
			}
			if l := proc.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != amb.SpanContext().SpanID() {
				t.Errorf("ambient link missing: %+v", l)
			}
		})
	}
}

func TestBaggageReachesHandler(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	m, _ := baggage.NewMember("tenant", "acme")
	b, _ := baggage.New(m)
	e := event.New("orders", 1)
	_ = r.emit(baggage.ContextWithBaggage(context.Background(), b), e, nop)
	var got string
	_ = r.process(context.Background(), e, 1, func(ctx context.Context, _ *event.Event) error {
		got = baggage.FromContext(ctx).Member("tenant").Value()
		return nil
	})
	if got != "acme" {
		t.Errorf("baggage tenant = %q", got)
	}
}

func TestPanicStackEvent(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	e := event.New("orders", 1)
	err := r.process(context.Background(), e, 1, func(context.Context, *event.Event) error { panic("kaboom") })
	var pe *middleware.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	proc := r.sr.Ended()[0]
	wantAttrs(t, proc, map[string]any{"error.type": "*middleware.PanicError"})
	evs := proc.Events()
	if len(evs) != 1 || evs[0].Name != "panic" {
		t.Fatalf("events %+v", evs)
	}
	st := attrMap(evs[0].Attributes)["exception.stacktrace"].AsString()
	if !strings.Contains(st, "goroutine") {
		t.Errorf("stack %q", st)
	}
}

type stackErr struct{}

func (stackErr) Error() string        { return "custom panic" }
func (stackErr) PanicStack() []byte   { return []byte("goroutine 1 [running]") }
func (stackErr) Is(target error) bool { return false }

func TestPanicStackMethod(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	_ = r.process(context.Background(), event.New("orders", 1), 1, func(context.Context, *event.Event) error {
		return fmt.Errorf("wrapped: %w", stackErr{})
	})
	if evs := r.sr.Ended()[0].Events(); len(evs) != 1 || evs[0].Name != "panic" {
		t.Errorf("events %+v", evs)
	}
}

func TestLogsCarryTraceIDs(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	var buf bytes.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil)))
	e := event.New("orders", 1)
	_ = r.emit(context.Background(), e, nop)
	_ = r.process(context.Background(), e, 1, func(ctx context.Context, _ *event.Event) error {
		log.InfoContext(ctx, "handled")
		return nil
	})
	proc := r.sr.Ended()[1]
	want := fmt.Sprintf(`"trace_id":"%s","span_id":"%s"`, proc.SpanContext().TraceID(), proc.SpanContext().SpanID())
	if !strings.Contains(buf.String(), want) {
		t.Errorf("log %q lacks %s", buf.String(), want)
	}
}

func TestMetrics(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	boom := errors.New("boom")
	consume := event.Chain(func(ctx context.Context, e *event.Event) error {
		if err := r.process(ctx, e, 1, func(context.Context, *event.Event) error { return boom }); err == nil {
			t.Error("want error")
		}
		return r.process(ctx, e, 2, nop)
	}, r.sub.Consume)
	for range 3 {
		e := event.New("orders", 1)
		if err := r.emit(context.Background(), e, nop); err != nil {
			t.Fatal(err)
		}
		if err := consume(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	_ = r.emit(context.Background(), event.New("orders", 1), func(context.Context, *event.Event) error { return boom })

	var rm metricdata.ResourceMetrics
	if err := r.rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	ms := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			ms[m.Name] = m
		}
	}
	sendSet := attribute.NewSet(attribute.String("messaging.system", "memory"), attribute.String("messaging.operation.name", "send"),
		attribute.String("messaging.destination.name", "orders"))
	sendErr := attribute.NewSet(append(sendSet.ToSlice(), attribute.String("error.type", "*errors.errorString"))...)
	procSet := attribute.NewSet(attribute.String("messaging.system", "memory"), attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.destination.name", "orders"), attribute.String("messaging.consumer.group.name", "billing"))
	procErr := attribute.NewSet(append(procSet.ToSlice(), attribute.String("error.type", "*errors.errorString"))...)
	baseSet := attribute.NewSet(attribute.String("messaging.system", "memory"),
		attribute.String("messaging.destination.name", "orders"), attribute.String("messaging.consumer.group.name", "billing"))

	counter := func(name, unit string, want map[*attribute.Set]int64) {
		t.Helper()
		m := ms[name]
		if m.Unit != unit {
			t.Errorf("%s unit %q want %q", name, m.Unit, unit)
		}
		sum, ok := m.Data.(metricdata.Sum[int64])
		if !ok {
			t.Fatalf("%s data %T", name, m.Data)
		}
		if len(sum.DataPoints) != len(want) {
			t.Errorf("%s: %d points, want %d", name, len(sum.DataPoints), len(want))
		}
		for set, v := range want {
			found := false
			for _, dp := range sum.DataPoints {
				if dp.Attributes.Equals(set) {
					found = true
					if dp.Value != v {
						t.Errorf("%s%v = %d, want %d", name, set.ToSlice(), dp.Value, v)
					}
				}
			}
			if !found {
				t.Errorf("%s: no point %v", name, set.ToSlice())
			}
		}
	}
	hist := func(name string, want map[*attribute.Set]uint64, exemplars bool) {
		t.Helper()
		m := ms[name]
		if m.Unit != "s" {
			t.Errorf("%s unit %q", name, m.Unit)
		}
		h, ok := m.Data.(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("%s data %T", name, m.Data)
		}
		if len(h.DataPoints) != len(want) {
			t.Errorf("%s: %d points, want %d", name, len(h.DataPoints), len(want))
		}
		for _, dp := range h.DataPoints {
			if !slices.Equal(dp.Bounds, itel.DurationBuckets) {
				t.Errorf("%s bounds %v", name, dp.Bounds)
			}
			for set, n := range want {
				if dp.Attributes.Equals(set) && dp.Count != n {
					t.Errorf("%s%v count %d want %d", name, set.ToSlice(), dp.Count, n)
				}
			}
			if exemplars {
				if len(dp.Exemplars) == 0 {
					t.Errorf("%s%v: no exemplars", name, dp.Attributes.ToSlice())
				}
				for _, ex := range dp.Exemplars {
					if len(ex.TraceID) != 16 || len(ex.SpanID) != 8 {
						t.Errorf("%s exemplar without trace: %+v", name, ex)
					}
				}
			}
		}
	}
	counter("messaging.client.sent.messages", "{message}", map[*attribute.Set]int64{&sendSet: 3, &sendErr: 1})
	counter("messaging.client.consumed.messages", "{message}", map[*attribute.Set]int64{&procSet: 3})
	counter("eventstream.in_flight", "{message}", map[*attribute.Set]int64{&baseSet: 0})
	hist("messaging.client.operation.duration", map[*attribute.Set]uint64{&sendSet: 3, &sendErr: 1}, true)
	hist("messaging.process.duration", map[*attribute.Set]uint64{&procSet: 3, &procErr: 3}, true)
	hist("eventstream.delivery.latency", map[*attribute.Set]uint64{&baseSet: 3}, false)
	if ms["messaging.client.sent.messages"].Description == "" {
		t.Error("instruments need descriptions")
	}
}

func TestNoExemplarWhenNotSampled(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	defer func() { _ = mp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) }()
	tel, _ := itel.New(itel.Config{TracerProvider: tp, MeterProvider: mp, System: "memory", InProcess: true})
	_ = event.Chain(nop, tel.Emit())(context.Background(), event.New("t", 1))
	var rm metricdata.ResourceMetrics
	_ = rd.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
				for _, dp := range h.DataPoints {
					if len(dp.Exemplars) != 0 {
						t.Errorf("%s: exemplar without a sampled span", m.Name)
					}
				}
			}
		}
	}
}

// The tracing middleware reuses its span-start scratch space (attributes and
// options) through a pool; concurrent spans of both kinds, with attribute
// lists of different lengths (memory and Kafka, with and without a key),
// must each keep their own attributes and links.
func TestPooledStartOptionsConcurrent(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	kr := newRig(t, telemetry.SystemKafka)
	const workers, per = 4, 200
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < per; i++ {
				e := event.New("orders", i)
				rr := r
				if i%2 == 1 {
					rr = kr
					e.Record = &event.Record{Partition: int32(i % 3), Offset: int64(i)}
					if i%4 == 1 {
						e.Key = "k-" + e.ID
					}
				}
				ctx := context.Background()
				if i%5 == 0 { // an ambient span becomes a link
					ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
						TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(i + 1)}, TraceFlags: trace.FlagsSampled}))
				}
				if err := rr.emit(context.Background(), e, nop); err != nil {
					errs <- err
					return
				}
				if err := event.Chain(nop, rr.sub.Process)(ctx, e); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	spans := append(r.sr.Ended(), kr.sr.Ended()...)
	if len(spans) != 2*workers*per {
		t.Fatalf("%d spans, want %d", len(spans), 2*workers*per)
	}
	sendOf := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindProducer {
			sendOf[attrMap(s.Attributes())[semconv.MessagingMessageIDKey].AsString()] = s
		}
	}
	for _, s := range spans {
		a := attrMap(s.Attributes())
		id := a[semconv.MessagingMessageIDKey].AsString()
		kafka := a[semconv.MessagingSystemKey].AsString() == telemetry.SystemKafka
		wantN := 5 // send: system, operation type/name, destination, message id
		if kafka {
			wantN += 2 // partition, offset (on send: after publish)
		}
		if s.SpanKind() == trace.SpanKindConsumer {
			wantN += 3 // process: + group, subscription, attempt
			send := sendOf[id]
			if send == nil || s.Parent().SpanID() != send.SpanContext().SpanID() {
				t.Fatalf("process span of %s not a child of its send span", id)
			}
			if len(s.Links()) > 1 {
				t.Errorf("process span of %s has %d links", id, len(s.Links()))
			}
		}
		if k, ok := a[semconv.MessagingKafkaMessageKeyKey]; ok {
			if k.AsString() != "k-"+id {
				t.Fatalf("span of %s has key %q", id, k.AsString())
			}
			wantN++
		}
		if len(s.Attributes()) != wantN {
			t.Errorf("%s span of %s: %d attributes, want %d: %v", s.SpanKind(), id, len(s.Attributes()), wantN, s.Attributes())
		}
	}
}
