package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/history"
	"libx.net/eventstream/middleware"
	"libx.net/eventstream/telemetry"
)

type rig struct {
	tel   *telemetry.Telemetry
	tp    *sdktrace.TracerProvider
	mp    *sdkmetric.MeterProvider
	rec   *history.Recorder
	stats *history.StatsReader
}

func newRig(t *testing.T, size int) *rig {
	t.Helper()
	rec := history.NewRecorder(size)
	stats := history.NewStatsReader()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(stats.Reader()))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{tel: tel, tp: tp, mp: mp, rec: rec, stats: stats}
}

func (r *rig) emit(t *testing.T, topic string, fail error) *event.Event {
	t.Helper()
	e := event.New(topic, 1)
	_ = event.Chain(func(context.Context, *event.Event) error { return fail },
		middleware.EmitTracing(r.tel, "memory"), middleware.EmitMetrics(r.tel, "memory"))(context.Background(), e)
	return e
}

func TestRecorderRingBoundsAndOrder(t *testing.T) {
	r := newRig(t, 3)
	var ids []string
	for i := range 5 {
		ids = append(ids, r.emit(t, fmt.Sprintf("t%d", i), nil).ID)
	}
	// A span of another scope is not kept.
	_, other := r.tp.Tracer("someone.else").Start(context.Background(), "send x")
	other.End()

	if r.rec.Len() != 3 {
		t.Fatalf("len = %d", r.rec.Len())
	}
	got := r.rec.Recent(0)
	if len(got) != 3 {
		t.Fatalf("recent = %d", len(got))
	}
	for i, e := range got {
		if want := ids[4-i]; e.EventID != want || e.Topic != fmt.Sprintf("t%d", 4-i) || e.Operation != "send" {
			t.Errorf("entry %d = %+v, want event %s", i, e, want)
		}
		if len(e.TraceID) != 32 || len(e.SpanID) != 16 || e.Status != history.StatusOK {
			t.Errorf("entry %d ids/status: %+v", i, e)
		}
	}
	if got := r.rec.Recent(2); len(got) != 2 || got[0].EventID != ids[4] {
		t.Errorf("Recent(2) = %+v", got)
	}
}

func TestRecorderProcessEntries(t *testing.T) {
	r := newRig(t, 10)
	sub := r.tel.Subscription(event.SubscriptionInfo{Topic: "orders", Group: "billing", Name: "billing#1", System: "memory"})
	e := r.emit(t, "orders", nil)
	proc := event.Chain(func(ctx context.Context, _ *event.Event) error {
		if event.Attempt(ctx) == 1 {
			return errors.New("boom")
		}
		return nil
	}, middleware.ProcessTracing(sub), middleware.ProcessMetrics(sub))
	_ = proc(context.Background(), e)
	_ = proc(event.WithAttempt(context.Background(), 2), e)

	got := r.rec.Recent(10)
	if len(got) != 3 {
		t.Fatalf("entries %+v", got)
	}
	p2, p1, send := got[0], got[1], got[2]
	if send.Operation != "send" || p1.Operation != "process" || p2.Operation != "process" {
		t.Fatalf("operations %s %s %s", send.Operation, p1.Operation, p2.Operation)
	}
	if p1.Attempt != 1 || p2.Attempt != 2 || p1.Group != "billing" || p1.Subscription != "billing#1" || p1.EventID != e.ID {
		t.Errorf("process entries %+v %+v", p1, p2)
	}
	if p1.Status != history.StatusError || p1.Error != "boom" || p2.Status != history.StatusOK {
		t.Errorf("statuses %+v %+v", p1, p2)
	}
	if p1.TraceID != send.TraceID || p2.TraceID != send.TraceID {
		t.Error("attempts not in the send span's trace")
	}
	if p1.Duration < 0 || p1.Start.IsZero() {
		t.Errorf("timing %+v", p1)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := newRig(t, 64)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				r.emit(t, "c", nil)
				_ = r.rec.Recent(10)
			}
		}()
	}
	for range 4 {
		<-done
	}
	if r.rec.Len() != 64 {
		t.Errorf("len %d", r.rec.Len())
	}
}

func TestStatsEqualRecorded(t *testing.T) {
	r := newRig(t, 10)
	ctx := context.Background()
	for range 5 {
		r.emit(t, "orders", nil)
	}
	r.emit(t, "orders", errors.New("broker down"))
	r.emit(t, "audit", nil)

	billing := r.tel.Subscription(event.SubscriptionInfo{Topic: "orders", Group: "billing", Name: "b", System: "memory"})
	shipping := r.tel.Subscription(event.SubscriptionInfo{Topic: "orders", Group: "shipping", Name: "s", System: "memory"})
	e := event.New("orders", 1)
	for range 4 {
		billing.RecordConsumed(ctx)
		billing.RecordDeliveryLatency(ctx, 2*time.Millisecond)
		billing.RecordProcess(ctx, 300*time.Microsecond, nil)
	}
	billing.RecordProcess(ctx, time.Millisecond, errors.New("x"))
	billing.RecordProcess(ctx, time.Millisecond, errors.New("x"))
	billing.RecordRetry(ctx, e, 1, errors.New("x"))
	billing.RecordRetry(ctx, e, 2, errors.New("x"))
	billing.RecordDeadLetter(ctx, e, errors.New("x"))
	billing.AddInFlight(ctx, 3)
	billing.AddInFlight(ctx, -1)
	shipping.RecordConsumed(ctx)
	shipping.RecordProcess(ctx, 20*time.Millisecond, nil)

	// Metrics of another scope are ignored.
	other, _ := r.mp.Meter("someone.else").Int64Counter(telemetry.MetricSentMessages)
	other.Add(ctx, 100)

	st, err := r.stats.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Emitted != 6 || st.EmitFailed != 1 || st.Delivered != 5 || st.Succeeded != 5 || st.Failed != 2 ||
		st.Retried != 2 || st.DeadLettered != 1 || st.InFlight != 2 {
		t.Errorf("totals %+v", st.Counts)
	}
	rows := map[string]history.Row{}
	for _, row := range st.Rows {
		rows[row.Topic+"/"+row.Group] = row
	}
	if len(st.Rows) != 4 {
		t.Errorf("rows %+v", st.Rows)
	}
	if r := rows["orders/"]; r.Emitted != 5 || r.EmitFailed != 1 {
		t.Errorf("orders emit row %+v", r)
	}
	if r := rows["audit/"]; r.Emitted != 1 {
		t.Errorf("audit row %+v", r)
	}
	b := rows["orders/billing"]
	if b.Delivered != 4 || b.Succeeded != 4 || b.Failed != 2 || b.Retried != 2 || b.DeadLettered != 1 || b.InFlight != 2 {
		t.Errorf("billing row %+v", b)
	}
	// 4 × 0.3 ms, 2 × 1 ms: p50 in the (0.25 ms, 0.5 ms] bucket, p99 in (0.5 ms, 1 ms].
	if b.LatencyP50 <= 250*time.Microsecond || b.LatencyP50 > 500*time.Microsecond {
		t.Errorf("billing p50 %v", b.LatencyP50)
	}
	if b.LatencyP99 <= 500*time.Microsecond || b.LatencyP99 > time.Millisecond {
		t.Errorf("billing p99 %v", b.LatencyP99)
	}
	if b.DeliveryP50 != 2*time.Millisecond { // min = max = 2 ms clamps the bucket
		t.Errorf("billing delivery p50 %v", b.DeliveryP50)
	}
	if s := rows["orders/shipping"]; s.Delivered != 1 || s.LatencyP50 != 20*time.Millisecond {
		t.Errorf("shipping row %+v", s)
	}
	if st.LatencyP99 <= 10*time.Millisecond {
		t.Errorf("total p99 %v should reflect the 20 ms shipping attempt", st.LatencyP99)
	}
}

type fakeSource struct {
	entries []history.Entry
	stats   history.Stats
	topo    history.Topology
}

func (f fakeSource) Recent(n int) []history.Entry {
	if n < len(f.entries) {
		return f.entries[:n]
	}
	return f.entries
}
func (f fakeSource) Stats(context.Context) (history.Stats, error) { return f.stats, nil }
func (f fakeSource) Topology() history.Topology                   { return f.topo }

func testSource() fakeSource {
	return fakeSource{
		entries: []history.Entry{
			{EventID: "ev-2", Topic: "orders", Group: "billing", Subscription: "b#1", Operation: "process", Attempt: 2,
				Start: time.Now(), Duration: 1500 * time.Microsecond, Status: "error", Error: "<boom>", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"},
			{EventID: "ev-1", Topic: "orders", Operation: "send", Start: time.Now(), Duration: time.Microsecond, Status: "ok",
				TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b8"},
		},
		stats: history.Stats{Counts: history.Counts{Emitted: 7, Delivered: 6},
			Rows: []history.Row{{Topic: "orders", Group: "billing", Counts: history.Counts{Delivered: 6, Retried: 1, LatencyP95: 3 * time.Millisecond}}}},
		topo: history.Topology{Topics: []history.TopicNode{{Name: "orders", Groups: []history.GroupNode{{Name: "billing", Subscriptions: []string{"b#1", "b#2"}}}}}},
	}
}

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestHandlerJSON(t *testing.T) {
	h := http.StripPrefix("/debug/events", history.Handler(testSource()))
	for _, tc := range []struct {
		path string
		hdr  map[string]string
	}{
		{"/debug/events/?format=json", nil},
		{"/debug/events", map[string]string{"Accept": "application/json"}},
	} {
		w := get(t, h, tc.path, tc.hdr)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s: %d %s", tc.path, w.Code, w.Header().Get("Content-Type"))
		}
		var doc history.Document
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Events) != 2 || doc.Events[0].TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || doc.Stats.Emitted != 7 ||
			len(doc.Topology.Topics) != 1 || doc.Stats.Rows[0].LatencyP95 != 3*time.Millisecond {
			t.Errorf("%s: doc %+v", tc.path, doc)
		}
	}

	w := get(t, h, "/debug/events/events?n=1", nil)
	var es []history.Entry
	if err := json.Unmarshal(w.Body.Bytes(), &es); err != nil || len(es) != 1 || es[0].EventID != "ev-2" || es[0].Attempt != 2 {
		t.Errorf("events: %v %+v", err, es)
	}
	var raws []map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &raws)
	if raw := raws[0]; raw["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || raw["event_id"] != "ev-2" {
		t.Errorf("json field names: %v", raw)
	}
	var st history.Stats
	if w := get(t, h, "/debug/events/stats", nil); json.Unmarshal(w.Body.Bytes(), &st) != nil || st.Delivered != 6 || st.Rows[0].Retried != 1 {
		t.Errorf("stats: %s", w.Body)
	}
	var topo history.Topology
	if w := get(t, h, "/debug/events/topology", nil); json.Unmarshal(w.Body.Bytes(), &topo) != nil || topo.Topics[0].Groups[0].Subscriptions[1] != "b#2" {
		t.Errorf("topology: %s", w.Body)
	}
	if w := get(t, h, "/debug/events/nope", nil); w.Code != 404 {
		t.Errorf("unknown path: %d", w.Code)
	}
	req := httptest.NewRequest(http.MethodPost, "/debug/events/", nil)
	pw := httptest.NewRecorder()
	h.ServeHTTP(pw, req)
	if pw.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", pw.Code)
	}

	// Empty source: arrays, not null.
	w = get(t, history.Handler(history.NewSource(nil, nil, nil)), "/?format=json", nil)
	if !strings.Contains(w.Body.String(), `"events": []`) || !strings.Contains(w.Body.String(), `"topics": []`) || !strings.Contains(w.Body.String(), `"rows": []`) {
		t.Errorf("empty doc: %s", w.Body)
	}
}

func TestHandlerHTML(t *testing.T) {
	h := http.StripPrefix("/debug/events", history.Handler(testSource()))
	w := get(t, h, "/debug/events/", map[string]string{"Accept": "text/html,application/xhtml+xml"})
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	for _, want := range []string{
		"<!DOCTYPE html>", "4bf92f3577b34da6a3ce929d0e0e4736", "ev-2", "&lt;boom&gt;", `class="error"`,
		"billing", "b#2", "3.00 ms", "1.50 ms",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<boom>") {
		t.Error("error text not escaped")
	}
	for _, ext := range []string{"src=\"http", "href=\"http", "<link rel=\"stylesheet\""} {
		if strings.Contains(body, ext) {
			t.Errorf("page references external asset: %q", ext)
		}
	}
}

func TestHandlerOverRealTelemetry(t *testing.T) {
	r := newRig(t, 10)
	e := r.emit(t, "orders", nil)
	src := history.NewSource(r.rec, r.stats, func() history.Topology {
		return history.Topology{Topics: []history.TopicNode{{Name: "orders"}}}
	})
	w := get(t, history.Handler(src), "/?format=json", nil)
	var doc history.Document
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Events) != 1 || doc.Events[0].EventID != e.ID || doc.Stats.Emitted != 1 {
		t.Errorf("doc %+v", doc)
	}
	if w := get(t, history.Handler(src), "/", nil); !strings.Contains(w.Body.String(), e.ID) {
		t.Error("html lacks the event")
	}
}
