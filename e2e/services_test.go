package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream/e2e/promcheck"
)

// These tests look at running EventStream services through the real tools:
// Jaeger's query API, Prometheus's HTTP API and headless Chromium. .ci/run
// starts the services (scripts/), runs the microservice example, and sets
// the variables; without them each test says what it needs and skips.

func need(t *testing.T, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Skipf("%s not set: .ci/run starts the real service and sets it", env)
	}
	return v
}

func getJSON(ctx context.Context, rawURL string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// otlpTraces is the part of Jaeger's /api/v3 OTLP-JSON answer we read.
type otlpTraces struct {
	Result struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []struct {
					Key   string `json:"key"`
					Value struct {
						StringValue string `json:"stringValue"`
					} `json:"value"`
				} `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Scope struct {
					Name string `json:"name"`
				} `json:"scope"`
				Spans []otlpSpan `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	} `json:"result"`
}

type otlpSpan struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Attributes   []struct {
		Key   string `json:"key"`
		Value struct {
			StringValue string `json:"stringValue"`
		} `json:"value"`
	} `json:"attributes"`
	service string
}

func (t otlpTraces) spans() []otlpSpan {
	var out []otlpSpan
	for _, rs := range t.Result.ResourceSpans {
		service := ""
		for _, a := range rs.Resource.Attributes {
			if a.Key == "service.name" {
				service = a.Value.StringValue
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				s.service = service
				out = append(out, s)
			}
		}
	}
	return out
}

func (s otlpSpan) attr(key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.StringValue
		}
	}
	return ""
}

// TestTraceAcrossServices: one trace holds the emitting service's send span
// and, as its children, the process spans of each consuming group, each
// reported by its own service (separate processes over Kafka).
func TestTraceAcrossServices(t *testing.T) {
	base := need(t, "EVENTSTREAM_JAEGER_URL")
	producer := envOr("EVENTSTREAM_E2E_PRODUCER", "order-service")
	consumers := strings.Split(envOr("EVENTSTREAM_E2E_CONSUMERS", "notification-service,points-service"), ",")
	topic := envOr("EVENTSTREAM_E2E_TOPIC", "order.created")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var lastErr string
	for ctx.Err() == nil {
		q := url.Values{}
		q.Set("query.service_name", producer)
		q.Set("query.start_time_min", time.Now().Add(-30*time.Minute).UTC().Format(time.RFC3339Nano))
		q.Set("query.start_time_max", time.Now().UTC().Format(time.RFC3339Nano))
		// Jaeger v1.76's HTTP gateway reads query.num_traces (newer
		// versions call it query.search_depth); send both.
		q.Set("query.num_traces", "20")
		q.Set("query.search_depth", "20")
		var found otlpTraces
		code, err := getJSON(ctx, base+"/api/v3/traces?"+q.Encode(), &found)
		switch {
		case err != nil:
			lastErr = err.Error()
		case code != http.StatusOK:
			lastErr = fmt.Sprintf("search answered %d", code)
		default:
			ids := map[string]bool{}
			for _, s := range found.spans() {
				if s.Name == "send "+topic {
					ids[s.TraceID] = true
				}
			}
			for id := range ids {
				var tr otlpTraces
				if code, err := getJSON(ctx, base+"/api/v3/traces/"+id, &tr); err != nil || code != http.StatusOK {
					continue
				}
				if why := checkTrace(tr.spans(), producer, consumers, topic); why == "" {
					t.Logf("trace %s: send by %s, process by %s", id, producer, strings.Join(consumers, ", "))
					return
				} else {
					lastErr = "trace " + id + ": " + why
				}
			}
			if len(ids) == 0 {
				lastErr = "no trace of " + producer + " holds a send " + topic + " span yet"
			}
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("no complete cross-service trace in Jaeger: %s", lastErr)
}

func checkTrace(spans []otlpSpan, producer string, consumers []string, topic string) string {
	var send *otlpSpan
	for i, s := range spans {
		if s.Name == "send "+topic && s.Kind == 4 && s.service == producer {
			send = &spans[i]
		}
	}
	if send == nil {
		return "no PRODUCER span send " + topic + " from " + producer
	}
	for _, c := range consumers {
		ok := false
		for _, s := range spans {
			if s.service == c && s.Name == "process "+topic && s.Kind == 5 && s.ParentSpanID == send.SpanID &&
				s.attr("messaging.consumer.group.name") != "" {
				ok = true
			}
		}
		if !ok {
			return "no CONSUMER span process " + topic + " from " + c + " whose parent is the send span"
		}
	}
	return ""
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestEveryMetricScrapedWithExemplars: Prometheus holds every metric of the
// README's telemetry table (the Kafka-only ones when a Kafka-mode process
// runs, the memory-only ones when a memory-mode process runs), and the
// latency histograms carry trace exemplars.
func TestEveryMetricScrapedWithExemplars(t *testing.T) {
	base := need(t, "EVENTSTREAM_PROMETHEUS_URL")
	c := promcheck.NewClient(base)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	modes, err := c.Modes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Poll all names together, so one missing metric cannot use up the
	// time of the others; last_over_time also finds series whose process
	// has just stopped.
	missing := map[string]bool{}
	for name := range promcheck.KnownMetrics {
		if name == "up" || name == "target_info" {
			continue
		}
		if reason, ok := promcheck.AllowedNoData(promcheck.Query{Expr: name}, modes); ok {
			t.Logf("%s: not expected here (%s)", name, reason)
			continue
		}
		if strings.Contains(name, "_errors_") {
			// kotel creates its error counters at the first error.
			t.Logf("%s: not expected (counts client errors, and a healthy run has none)", name)
			continue
		}
		missing[name] = true
	}
	for len(missing) > 0 && ctx.Err() == nil {
		for name := range missing {
			if n, _, err := c.Instant(ctx, "last_over_time("+name+"[30m])"); err == nil && n > 0 {
				delete(missing, name)
			}
		}
		if len(missing) > 0 {
			time.Sleep(2 * time.Second)
		}
	}
	for name := range missing {
		t.Errorf("Prometheus has no series %s", name)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range []string{"messaging_process_duration_seconds_bucket", "messaging_client_operation_duration_seconds_bucket"} {
		var got int
		for ctx.Err() == nil {
			q := url.Values{}
			q.Set("query", h)
			q.Set("start", fmt.Sprint(time.Now().Add(-30*time.Minute).Unix()))
			q.Set("end", fmt.Sprint(time.Now().Unix()))
			var resp struct {
				Data []struct {
					Exemplars []struct {
						Labels map[string]string `json:"labels"`
					} `json:"exemplars"`
				} `json:"data"`
			}
			if _, err := getJSON(ctx, base+"/api/v1/query_exemplars?"+q.Encode(), &resp); err == nil {
				for _, d := range resp.Data {
					for _, e := range d.Exemplars {
						if regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(e.Labels["trace_id"]) {
							got++
						}
					}
				}
			}
			if got > 0 {
				break
			}
			time.Sleep(2 * time.Second)
		}
		if got == 0 {
			t.Errorf("%s has no exemplars with a trace_id", h)
		} else {
			t.Logf("%s: %d exemplars with trace ids", h, got)
		}
	}
}

// TestDeadLetterAlertFires: after the example's poison order is
// dead-lettered, the dead-letter alert's expression is true.
func TestDeadLetterAlertFires(t *testing.T) {
	base := need(t, "EVENTSTREAM_PROMETHEUS_URL")
	alerts, err := promcheck.AlertQueries(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	expr := ""
	for _, a := range alerts {
		if strings.Contains(a.ID(), "DeadLetter") {
			expr = a.Expr
		}
	}
	if expr == "" {
		t.Fatal("no dead-letter alert in the rules")
	}
	c := promcheck.NewClient(base)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if n, _, err := c.Instant(ctx, expr); err == nil && n > 0 {
			t.Logf("dead-letter alert expression is true (%d series): %s", n, expr)
			return
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("dead-letter alert expression never became true: %s", expr)
}

// TestIntrospectionPage opens the debug page in headless Chromium: no
// console errors, recent events with trace ids, per-subscription stats, and
// per-second plots with data for every consumer group.
func TestIntrospectionPage(t *testing.T) {
	page := need(t, "EVENTSTREAM_DEBUG_URL")
	script, err := filepath.Abs("../scripts/chromium.sh")
	if err != nil {
		t.Fatal(err)
	}
	// The plots begin with the first look: look, then wait for a few
	// seconds of figures before the browser does.
	waitForSeries(t, strings.TrimSuffix(page, "/")+"/series", 3)
	out, err := exec.Command(script, "console", page).CombinedOutput()
	if err != nil {
		t.Fatalf("console errors on %s: %v\n%s", page, err, out)
	}
	dom, err := exec.Command(script, "dom", page).Output()
	if err != nil {
		t.Fatalf("dom: %v", err)
	}
	html := string(dom)
	if !regexp.MustCompile(`[0-9a-f]{32}`).MatchString(html) {
		t.Error("page shows no trace id")
	}
	for _, want := range strings.Split(envOr("EVENTSTREAM_E2E_PAGE_SHOWS", "process,order.created"), ",") {
		if !strings.Contains(html, want) {
			t.Errorf("page does not show %q", want)
		}
	}
	checkPlots(t, html)
	if shot := os.Getenv("EVENTSTREAM_SCREENSHOT"); shot != "" {
		if out, err := exec.Command(script, "screenshot", page, shot).CombinedOutput(); err != nil {
			t.Fatalf("screenshot: %v\n%s", err, out)
		}
	}
}

// waitForSeries polls the debug page's /series until every consumer group
// has at least n points, for up to a minute.
func waitForSeries(t *testing.T, url string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		var series []struct {
			Topic string    `json:"topic"`
			Group string    `json:"group"`
			Rate  []float64 `json:"rate"`
		}
		code, err := getJSON(ctx, url, &series)
		switch {
		case err != nil:
			last = err.Error()
		case code != http.StatusOK:
			last = fmt.Sprintf("%s answered %d", url, code)
		default:
			short := 0
			groups := 0
			for _, s := range series {
				if s.Group == "" {
					continue
				}
				groups++
				if len(s.Rate) < n {
					short++
				}
			}
			if groups > 0 && short == 0 {
				return
			}
			last = fmt.Sprintf("%d of %d groups with fewer than %d points", short, groups, n)
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no per-second figures at %s: %s", url, last)
}

// checkPlots: the page draws plots, each group's have points, and some
// line shows traffic (a point above the baseline).
func checkPlots(t *testing.T, html string) {
	t.Helper()
	plots := regexp.MustCompile(`<svg class="plot"[^>]*height="(\d+)"[^>]*data-points="(\d+)"[^>]*>(.*?)</svg>`).FindAllStringSubmatch(html, -1)
	if len(plots) == 0 {
		t.Fatal("page shows no plots")
	}
	above := 0
	for _, p := range plots {
		if p[2] == "0" {
			t.Errorf("a plot without points: %s", p[0])
			continue
		}
		m := regexp.MustCompile(`<polyline points="([^"]+)"`).FindStringSubmatch(p[3])
		if m == nil {
			t.Errorf("a plot with points but no line: %s", p[0])
			continue
		}
		base, _ := strconv.ParseFloat(p[1], 64)
		for _, pt := range strings.Fields(m[1]) {
			_, y, _ := strings.Cut(pt, ",")
			if v, err := strconv.ParseFloat(y, 64); err == nil && v < base-1 {
				above++
				break
			}
		}
	}
	if above == 0 {
		t.Error("no plot has a point above its baseline: no traffic plotted")
	}
	t.Logf("%d plots, %d showing traffic", len(plots), above)
}

// TestIntrospectionEventView opens the debug page's view of one order of
// the example — one that EVENTSTREAM_E2E_EVENT_GROUP (points-service, in
// this process) handled at least 2 s ago, so that its chain is done; its id
// read from the page's JSON — as JSON at /events/{id} and as HTML in
// Chromium: no console errors, its lineage, its attempts and the events it
// caused (EVENTSTREAM_E2E_EVENT_CAUSED, default points.granted: a topic its
// tree must hold; EVENTSTREAM_E2E_EVENT_SHOWS: what the HTML must show
// beyond that).
func TestIntrospectionEventView(t *testing.T) {
	page := need(t, "EVENTSTREAM_DEBUG_URL")
	topic := envOr("EVENTSTREAM_E2E_TOPIC", "order.created")
	group := envOr("EVENTSTREAM_E2E_EVENT_GROUP", "points-service")
	caused := envOr("EVENTSTREAM_E2E_EVENT_CAUSED", "points.granted")
	var doc struct {
		Events []struct {
			EventID   string    `json:"event_id"`
			Topic     string    `json:"topic"`
			Group     string    `json:"group"`
			Operation string    `json:"operation"`
			Status    string    `json:"status"`
			Start     time.Time `json:"start"`
		} `json:"events"`
	}
	mustGetJSON(t, page+"?format=json&n=1000", &doc)
	id := ""
	for _, e := range doc.Events { // newest first: the last one seen is the oldest
		if e.Topic == topic && e.Group == group && e.Operation == "process" && e.Status == "ok" &&
			time.Since(e.Start) > 2*time.Second {
			id = e.EventID
		}
	}
	if id == "" {
		t.Fatalf("the page's JSON lists no attempt of %s on %s that succeeded 2 s ago or more", group, topic)
	}

	var view struct {
		ID            string `json:"id"`
		Found         bool   `json:"found"`
		CorrelationID string `json:"correlation_id"`
		Caused        []struct {
			Topic  string `json:"topic"`
			Status string `json:"status"`
		} `json:"caused"`
	}
	mustGetJSON(t, page+"events/"+url.PathEscape(id), &view)
	if !view.Found || view.ID != id || view.CorrelationID != id {
		t.Errorf("GET events/%s: found %v, id %q, correlation %q (an order starts its chain)", id, view.Found, view.ID, view.CorrelationID)
	}
	found := false
	for _, c := range view.Caused {
		found = found || c.Topic == caused
	}
	if !found {
		t.Errorf("the view of %s shows no caused event on %s: %+v", id, caused, view.Caused)
	}

	script, err := filepath.Abs("../scripts/chromium.sh")
	if err != nil {
		t.Fatal(err)
	}
	eventPage := page + "?" + url.Values{"event": {id}}.Encode()
	if out, err := exec.Command(script, "console", eventPage).CombinedOutput(); err != nil {
		t.Fatalf("console errors on %s: %v\n%s", eventPage, err, out)
	}
	dom, err := exec.Command(script, "dom", eventPage).Output()
	if err != nil {
		t.Fatalf("dom: %v", err)
	}
	html := string(dom)
	for _, want := range append([]string{id, `id="lineage"`, `id="attempts"`, `id="caused"`, caused, group},
		strings.Split(os.Getenv("EVENTSTREAM_E2E_EVENT_SHOWS"), ",")...) {
		if want != "" && !strings.Contains(html, want) {
			t.Errorf("the event view does not show %q", want)
		}
	}
	if shot := os.Getenv("EVENTSTREAM_EVENT_SCREENSHOT"); shot != "" {
		if out, err := exec.Command(script, "screenshot", eventPage, shot).CombinedOutput(); err != nil {
			t.Fatalf("screenshot: %v\n%s", err, out)
		}
	}
}

// mustGetJSON decodes the JSON at u into v, failing the test otherwise.
func mustGetJSON(t *testing.T, u string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := getJSON(ctx, u, v)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", u, code, err)
	}
}
