package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream/history"
)

// defaultLimit is the number of entries the handler lists without ?n=.
const defaultLimit = 100

// document is the JSON served at the handler's root.
type document struct {
	Time     time.Time        `json:"time"`
	Events   []history.Entry  `json:"events"`
	Stats    history.Stats    `json:"stats"`
	Topology history.Topology `json:"topology"`
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
		var doc document
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
	w = get(t, history.Handler(fakeSource{}), "/?format=json", nil)
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
	if got := eventIDs(t, get(t, h, "/events?status=ok", nil)); len(got) != defaultLimit || slices.Contains(got, "bad-1") {
		t.Errorf("status=ok: %d entries, %v", len(got), got[:3])
	}
	if got := eventIDs(t, get(t, h, "/events", nil)); len(got) != defaultLimit || got[0] != "ok-0" {
		t.Errorf("unfiltered: %d entries starting %v", len(got), got[:1])
	}

	// The combined document is filtered alike; its stats are not.
	var doc document
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
