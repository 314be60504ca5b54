package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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

// busySource is a history in which two failures sit among many successes
// of another topic and group, as on a bus handling 20 events a second.
func busySource() fakeSource {
	var es []history.Entry
	for i := range 300 {
		e := history.Entry{EventID: fmt.Sprintf("ok-%d", i), Topic: "orders", Group: "billing", Operation: "process",
			Attempt: 1, Status: history.StatusOK, TraceID: fmt.Sprintf("%032x", i)}
		switch i {
		case 150:
			e = history.Entry{EventID: "bad-1", Topic: "orders", Group: "points", Operation: "process",
				Attempt: 1, Status: history.StatusError, Error: "out of stock", TraceID: fmt.Sprintf("%032x", i)}
		case 250:
			e = history.Entry{EventID: "bad-2", Topic: "audit", Group: "points", Operation: "process",
				Attempt: 2, Status: history.StatusError, Error: "timeout", TraceID: fmt.Sprintf("%032x", i)}
		case 280:
			e = history.Entry{EventID: "send-1", Topic: "audit", Operation: "send", Status: history.StatusOK,
				TraceID: fmt.Sprintf("%032x", i)}
		}
		es = append(es, e)
	}
	return fakeSource{entries: es}
}

func eventIDs(t *testing.T, w *httptest.ResponseRecorder) []string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var es []history.Entry
	if err := json.Unmarshal(w.Body.Bytes(), &es); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.EventID
	}
	return ids
}

func TestHandlerEventFilters(t *testing.T) {
	h := history.Handler(busySource())
	for _, tc := range []struct {
		query string
		want  []string
	}{
		// Both failures lie beyond the first 100 entries: filtering
		// happens before the limit, so they are still found.
		{"status=error", []string{"bad-1", "bad-2"}},
		{"status=error&n=1", []string{"bad-1"}},
		{"status=error&topic=audit", []string{"bad-2"}},
		{"group=points", []string{"bad-1", "bad-2"}},
		{"topic=audit", []string{"bad-2", "send-1"}},
		{"topic=audit&status=ok", []string{"send-1"}},
		{"topic=audit&group=billing", []string{}},
		{"topic=nope", []string{}},
	} {
		got := eventIDs(t, get(t, h, "/events?"+tc.query, nil))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
		}
	}
	if got := eventIDs(t, get(t, h, "/events?status=ok", nil)); len(got) != history.DefaultLimit || slices.Contains(got, "bad-1") {
		t.Errorf("status=ok: %d entries, %v", len(got), got[:3])
	}
	if got := eventIDs(t, get(t, h, "/events", nil)); len(got) != history.DefaultLimit || got[0] != "ok-0" {
		t.Errorf("unfiltered: %d entries starting %v", len(got), got[:1])
	}

	// The combined document is filtered alike; its stats are not.
	var doc history.Document
	w := get(t, h, "/?format=json&status=error&group=points&topic=orders", nil)
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Events) != 1 || doc.Events[0].EventID != "bad-1" {
		t.Errorf("document events %+v", doc.Events)
	}

	for _, path := range []string{"/events?status=failed", "/?status=ERROR", "/?format=json&status=1"} {
		if w := get(t, h, path, nil); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", path, w.Code)
		}
	}
}

func TestHandlerPageFilters(t *testing.T) {
	h := history.Handler(busySource())
	body := get(t, h, "/?status=error&group=points&n=50", nil).Body.String()
	if !strings.Contains(body, "bad-1") || !strings.Contains(body, "bad-2") || strings.Contains(body, "ok-0") {
		t.Error("page does not show exactly the failures")
	}
	for _, want := range []string{
		`<option value="error" selected>`, // the filter's state is shown
		`<option selected>points</option>`,
		`<option>billing</option>`,
		`<option>audit</option>`,
		`<input type="hidden" name="n" value="50">`, // kept across filter changes
		`href="?format=json&amp;group=points&amp;n=50&amp;status=error"`,
		`id="auto"`, // the live/pause toggle
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if body := get(t, h, "/?topic=nope", nil).Body.String(); !strings.Contains(body, "no events match the filters") ||
		!strings.Contains(body, `<option selected>nope</option>`) {
		t.Error("page with an unmatched filter")
	}
}

func TestHandlerTraceLinks(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, h := range []http.Handler{history.Handler(testSource()), history.Handler(testSource(), history.WithTraceURL(""))} {
		plain := get(t, h, "/", nil).Body.String()
		if !strings.Contains(plain, `title="`+id+`"><code>`+id+`</code></td>`) || strings.Contains(plain, `target="_blank"`) {
			t.Error("without a template, trace ids must be plain text")
		}
	}

	h := history.Handler(testSource(), history.WithTraceURL("http://localhost:16686/trace/{id}"))
	page := get(t, h, "/", nil).Body.String()
	want := `<a href="http://localhost:16686/trace/` + id + `" target="_blank" rel="noopener"><code>` + id + `</code></a>`
	if !strings.Contains(page, want) {
		t.Errorf("page lacks the trace link %s", want)
	}
	if !strings.Contains(page, `title="`+id+`"`) {
		t.Error("a truncated id must keep its full value in a title")
	}
	// The placeholder may sit in a query.
	q := get(t, history.Handler(testSource(), history.WithTraceURL("https://ui.example/search?trace={id}&x=1")), "/", nil).Body.String()
	if !strings.Contains(q, `href="https://ui.example/search?trace=`+id+`&amp;x=1"`) {
		t.Error("query template not filled in")
	}

	for _, bad := range []string{"http://localhost:16686/trace/", "javascript:alert('{id}')", "/trace/{id}", "http://%zz/{id}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("WithTraceURL(%q) accepted", bad)
				}
			}()
			history.Handler(testSource(), history.WithTraceURL(bad))
		}()
	}
}

func TestHandlerEscapesHostileNames(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	src := fakeSource{
		entries: []history.Entry{{EventID: evil, Topic: evil, Group: evil, Subscription: evil, Operation: "process",
			Attempt: 1, Status: history.StatusError, Error: evil, TraceID: `"><img src=x onerror=alert(1)>`}},
		stats: history.Stats{Rows: []history.Row{{Topic: evil, Group: evil}}},
		topo: history.Topology{Topics: []history.TopicNode{{Name: evil,
			Groups: []history.GroupNode{{Name: evil, Subscriptions: []string{evil}}}}}},
	}
	h := history.Handler(src, history.WithTraceURL("http://localhost:16686/trace/{id}"))
	for _, path := range []string{"/", "/?topic=" + url.QueryEscape(evil) + "&group=" + url.QueryEscape(evil)} {
		body := get(t, h, path, nil).Body.String()
		for _, raw := range []string{evil, "<img", `"x"`} {
			if strings.Contains(body, raw) {
				t.Errorf("%s: page contains %q unescaped", path, raw)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
			t.Errorf("%s: escaped name missing", path)
		}
		// The hostile id reaches the link only percent-encoded.
		if !strings.Contains(body, `href="http://localhost:16686/trace/%22%3E%3Cimg%20src=x%20onerror=alert%281%29%3E"`) {
			t.Errorf("%s: trace link not encoded", path)
		}
	}
}
