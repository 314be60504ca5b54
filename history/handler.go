package history

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Topology is the shape of a bus: its topics, each topic's consumer groups,
// each group's subscriptions.
type Topology struct {
	Topics []TopicNode `json:"topics"`
}

// TopicNode is one topic of a Topology.
type TopicNode struct {
	Name   string      `json:"name"`
	Groups []GroupNode `json:"groups"`
}

// GroupNode is one consumer group of a topic.
type GroupNode struct {
	Name          string   `json:"name"`
	Subscriptions []string `json:"subscriptions"`
	// Circuit is the group's circuit-breaker state in this process
	// ("closed", "half-open", "open"; the worst of its subscriptions), ""
	// when it has no breaker.
	Circuit string `json:"circuit,omitempty"`
}

// Source is what Handler shows; the bus's DebugHandler serves one over
// the bus itself. Recent returns up to n entries, newest first.
type Source interface {
	Recent(n int) []Entry
	Stats(ctx context.Context) (Stats, error)
	Topology() Topology
}

// defaultLimit is the number of recent events shown when the request has no
// valid ?n= (1 to maxLimit).
const (
	defaultLimit = 100
	maxLimit     = 10000
)

// document is the combined JSON served at the handler's root.
type document struct {
	Time     time.Time `json:"time"`
	Events   []Entry   `json:"events"`
	Stats    Stats     `json:"stats"`
	Topology Topology  `json:"topology"`
	Series   []Series  `json:"series,omitempty"` // per second, from a SeriesSource
}

// HandlerOption configures Handler.
type HandlerOption interface {
	apply(*handlerConfig)
}

type handlerConfig struct {
	traceURL string // "" or an http(s) URL containing {id}
	replay   bool   // WithDeadLetterReplay
}

type handlerOptionFunc func(*handlerConfig)

func (f handlerOptionFunc) apply(c *handlerConfig) { f(c) }

// WithTraceURL makes each trace id on the HTML page a link to a trace
// viewer: template is an absolute http or https URL in which {id} stands for
// the trace id, e.g. Jaeger's "http://localhost:16686/trace/{id}". By
// default ids are plain text; an empty template keeps that. Handler panics
// on a template that is not such a URL, as http.ServeMux does on a bad
// pattern: it is a programming error, best seen at startup.
func WithTraceURL(template string) HandlerOption {
	return handlerOptionFunc(func(c *handlerConfig) { c.traceURL = template })
}

const traceIDPlaceholder = "{id}"

// validTraceURL reports why t cannot be a WithTraceURL template.
func validTraceURL(t string) error {
	if t == "" {
		return nil
	}
	if !strings.Contains(t, traceIDPlaceholder) {
		return fmt.Errorf("template %q has no %s", t, traceIDPlaceholder)
	}
	u, err := url.Parse(strings.ReplaceAll(t, traceIDPlaceholder, "0"))
	if err != nil {
		return fmt.Errorf("template %q: %v", t, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("template %q is not an absolute http or https URL", t)
	}
	return nil
}

// Handler serves src:
//
//	/          HTML page (recent events, stats, topology), or the combined
//	           JSON document with ?format=json or Accept: application/json
//	/events    JSON list of recent entries, newest first (?n=, default 100)
//	/events/{id} JSON EventView of one event (404 when the history holds
//	           none of it); the HTML view is /?event={id}
//	/stats     JSON Stats
//	/topology  JSON Topology
//	/series    JSON []Series, when src is a SeriesSource
//	/deadletters  dead letters (HTML or JSON), when src is a DeadLetterSource;
//	           POST /deadletters/replay with WithDeadLetterReplay
//
// The page and the JSON of / and /events take filters on recent entries:
// ?topic= and ?group= (exact names; send entries have no group, so a group
// filter leaves only process entries) and ?status=ok or ?status=error. The
// filters are applied to the whole history before ?n= is, so that the last
// n failures stay listed however busy the bus; an unknown status is a 400.
// The sub-paths serve HTML-free JSON always. Mount it under a prefix with
// http.StripPrefix("/debug/eventstream", history.Handler(src)). Only GET and
// HEAD are allowed.
func Handler(src Source, opts ...HandlerOption) http.Handler {
	var cfg handlerConfig
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := validTraceURL(cfg.traceURL); err != nil {
		panic("history: WithTraceURL: " + err.Error())
	}
	return &handler{src: src, cfg: cfg}
}

type handler struct {
	src Source
	cfg handlerConfig
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.serveDeadLetters(w, r) { // deadletters.go: /deadletters, POST /deadletters/replay
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h.serveEvent(w, r) { // /events/{id}, /?event={id}: event.go
		return
	}
	q := r.URL.Query()
	n := defaultLimit
	if v, err := strconv.Atoi(q.Get("n")); err == nil && v > 0 {
		n = min(v, maxLimit)
	}
	f := filter{Topic: q.Get("topic"), Group: q.Get("group"), Status: q.Get("status")}
	if f.Status != "" && f.Status != StatusOK && f.Status != StatusError {
		http.Error(w, fmt.Sprintf("status must be %q or %q", StatusOK, StatusError), http.StatusBadRequest)
		return
	}
	switch strings.Trim(r.URL.Path, "/") {
	case "":
		doc, err := h.doc(r.Context(), n, f)
		if err != nil {
			http.Error(w, "stats: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if wantsJSON(r) {
			writeJSON(w, doc)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := page.Execute(w, h.pageData(doc, n, f, q)); err != nil {
			// Headers are gone; nothing better to do than stop.
			return
		}
	case "events":
		writeJSON(w, nonNil(h.recent(n, f)))
	case "stats":
		st, err := h.src.Stats(r.Context())
		if err != nil {
			http.Error(w, "stats: "+err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, normStats(st))
	case "topology":
		writeJSON(w, normTopology(h.src.Topology()))
	case "series":
		h.serveSeries(w)
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) doc(ctx context.Context, n int, f filter) (document, error) {
	st, err := h.src.Stats(ctx)
	if err != nil {
		return document{}, err
	}
	return document{
		Time:     time.Now(),
		Events:   nonNil(h.recent(n, f)),
		Stats:    normStats(st),
		Topology: normTopology(h.src.Topology()),
		Series:   h.series(),
	}, nil
}

// recent returns up to n entries matching f, newest first.
func (h *handler) recent(n int, f filter) []Entry {
	if f == (filter{}) {
		return h.src.Recent(n)
	}
	// Filter the whole history, then cut: a rare failure must not be
	// crowded out of the first n by the successes around it.
	var out []Entry
	for _, e := range h.src.Recent(maxLimit) {
		if f.match(e) {
			out = append(out, e)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// filter selects entries; an empty field matches every entry.
type filter struct {
	Topic, Group, Status string
}

func (f filter) match(e Entry) bool {
	return (f.Topic == "" || e.Topic == f.Topic) &&
		(f.Group == "" || e.Group == f.Group) &&
		(f.Status == "" || e.Status == f.Status)
}

func wantsJSON(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// JSON arrays, never null, so that clients need no special case.
func nonNil(es []Entry) []Entry {
	if es == nil {
		return []Entry{}
	}
	return es
}

func normStats(s Stats) Stats {
	if s.Rows == nil {
		s.Rows = []Row{}
	}
	return s
}

func normTopology(t Topology) Topology {
	if t.Topics == nil {
		t.Topics = []TopicNode{}
	}
	for i := range t.Topics {
		if t.Topics[i].Groups == nil {
			t.Topics[i].Groups = []GroupNode{}
		}
		for j := range t.Topics[i].Groups {
			if t.Topics[i].Groups[j].Subscriptions == nil {
				t.Topics[i].Groups[j].Subscriptions = []string{}
			}
		}
	}
	return t
}

type pageData struct {
	document
	Limit         int
	Filter        filter
	Topics        []string // choices for the topic filter
	Groups        []string // choices for the group filter
	JSONQuery     string   // the page's query with format=json
	HiddenN       string   // ?n= to carry through the filter form
	traceTemplate string
}

func (h *handler) pageData(doc document, n int, f filter, q url.Values) pageData {
	// The filters offer every name known, not only those the current
	// filters let through, so that one can switch without resetting.
	seen := doc.Events
	if f != (filter{}) {
		seen = h.src.Recent(maxLimit)
	}
	topics, groups := map[string]bool{}, map[string]bool{}
	for _, t := range doc.Topology.Topics {
		topics[t.Name] = true
		for _, g := range t.Groups {
			groups[g.Name] = true
		}
	}
	for _, r := range doc.Stats.Rows {
		topics[r.Topic] = true
		groups[r.Group] = true
	}
	for _, e := range seen {
		topics[e.Topic] = true
		groups[e.Group] = true
	}
	// The current choice stays selectable even when nothing shows it now.
	topics[f.Topic], groups[f.Group] = true, true
	jq := url.Values{}
	for k, v := range q {
		jq[k] = v
	}
	jq.Set("format", "json")
	return pageData{
		document: doc, Limit: n, Filter: f,
		Topics: sortedNames(topics), Groups: sortedNames(groups),
		JSONQuery: "?" + jq.Encode(), HiddenN: q.Get("n"),
		traceTemplate: h.cfg.traceURL,
	}
}

// TraceLink is the trace viewer's URL for id, or "" without a template.
// The template's escaping still applies to it in the page.
func (p pageData) TraceLink(id string) string {
	if p.traceTemplate == "" || id == "" {
		return ""
	}
	return strings.ReplaceAll(p.traceTemplate, traceIDPlaceholder, url.PathEscape(id))
}

// sortedNames lists the non-empty keys of set in order.
func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"dur": func(d time.Duration) string {
		switch {
		case d == 0:
			return "–"
		case d < time.Millisecond:
			return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 1, 64) + " µs"
		case d < time.Second:
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
		}
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	},
	"clock": func(t time.Time) string { return t.Format("15:04:05.000") },
}).Parse(pageHTML))

// baseCSS is the look every view of the page shares.
const baseCSS = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa;max-width:1400px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid #ddd;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600}
`

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>EventStream debug page</title>
<style>
` + baseCSS + `h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.5em 0 .4em}
p{margin:.3em 0}
td{overflow-wrap:anywhere}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto}
#stats td.name{min-width:9em}
#events{table-layout:fixed;min-width:1000px}
#events th,#events td.t{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#events td.id{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
code{font:12px ui-monospace,monospace}.ok{color:#1a7f37}.error{color:#cf222e;font-weight:600}
tr.failed td{background:#fff5f5}
.circuit-open{color:#b00}.circuit-half-open{color:#a60}
.muted{color:#666}ul{margin:.2em 0}
form{display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center;margin:.8em 0;padding:.5em .7em;background:#fff;border:1px solid #ddd}
select{max-width:16em}
</style>
</head>
<body>
<h1>EventStream debug page</h1>
<p>One event bus in this process: its recent events, its stats per topic and consumer group, and its topology (topics, consumer groups, subscriptions), read from the bus's own measurements, the same that feed its spans and metrics.</p>
<p class="muted">As of {{clock .Time}} · <a href="{{.JSONQuery}}">this page as JSON</a> · <a href="deadletters">dead letters</a></p>

<form id="controls" method="get">
<label>topic <select name="topic"><option value="">all</option>{{range .Topics}}<option{{if eq . $.Filter.Topic}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>group <select name="group"><option value="">all</option>{{range .Groups}}<option{{if eq . $.Filter.Group}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>status <select name="status"><option value="">all</option><option value="ok"{{if eq .Filter.Status "ok"}} selected{{end}}>ok</option><option value="error"{{if eq .Filter.Status "error"}} selected{{end}}>error</option></select></label>
{{with .HiddenN}}<input type="hidden" name="n" value="{{.}}">{{end}}<button type="submit" id="apply">apply</button>
<label title="Unchecked, the page stays as it is: nothing scrolls away."><input type="checkbox" id="auto"> live: reload every 2 s</label>
<span class="muted">Filters select recent events, from the whole history kept.</span>
</form>

<h2>Stats</h2>
<p class="muted">Totals since the bus started. A row without a group is the emit side of its topic; group rows are its consumer groups. Failed counts handler attempts, retried the attempts scheduled again; handler latency is the time a handler took, delivery latency the time from emit to handler start; time lag is the age of the group's oldest event not yet handled (– when caught up).</p>
<div class="scroll"><table id="stats">
<tr><th rowspan="2">topic</th><th rowspan="2">group</th><th rowspan="2">emitted</th><th rowspan="2">emit failed</th><th rowspan="2">delivered</th><th rowspan="2">succeeded</th><th rowspan="2">failed attempts</th><th rowspan="2">retried</th><th rowspan="2">dead-lettered</th><th rowspan="2">in flight</th><th rowspan="2" title="age of the oldest event not yet handled">time lag</th><th colspan="3">handler latency</th><th colspan="3">delivery latency</th></tr>
<tr><th>p50</th><th>p95</th><th>p99</th><th>p50</th><th>p95</th><th>p99</th></tr>
{{range .Stats.Rows}}<tr><td class="name">{{.Topic}}</td><td class="name">{{.Group}}</td><td class="n">{{.Emitted}}</td><td class="n">{{.EmitFailed}}</td><td class="n">{{.Delivered}}</td><td class="n">{{.Succeeded}}</td><td class="n">{{.Failed}}</td><td class="n">{{.Retried}}</td><td class="n">{{.DeadLettered}}</td><td class="n">{{.InFlight}}</td><td class="n">{{dur .TimeLag}}</td><td class="n">{{dur .LatencyP50}}</td><td class="n">{{dur .LatencyP95}}</td><td class="n">{{dur .LatencyP99}}</td><td class="n">{{dur .DeliveryP50}}</td><td class="n">{{dur .DeliveryP95}}</td><td class="n">{{dur .DeliveryP99}}</td></tr>
{{end}}{{with .Stats}}<tr><th>total</th><th></th><th class="n">{{.Emitted}}</th><th class="n">{{.EmitFailed}}</th><th class="n">{{.Delivered}}</th><th class="n">{{.Succeeded}}</th><th class="n">{{.Failed}}</th><th class="n">{{.Retried}}</th><th class="n">{{.DeadLettered}}</th><th class="n">{{.InFlight}}</th><th class="n">{{dur .TimeLag}}</th><th class="n">{{dur .LatencyP50}}</th><th class="n">{{dur .LatencyP95}}</th><th class="n">{{dur .LatencyP99}}</th><th class="n">{{dur .DeliveryP50}}</th><th class="n">{{dur .DeliveryP95}}</th><th class="n">{{dur .DeliveryP99}}</th></tr>{{end}}
</table></div>
{{template "plots" .}}

<h2>Topology</h2>
{{if .Topology.Topics}}<ul id="topology">{{range .Topology.Topics}}
<li><b>{{.Name}}</b><ul>{{range .Groups}}<li>group <b>{{.Name}}</b>: {{range $i, $s := .Subscriptions}}{{if $i}}, {{end}}<code>{{$s}}</code>{{end}}{{with .Circuit}} · circuit <b class="circuit-{{.}}">{{.}}</b>{{end}}</li>{{else}}<li class="muted">no consumer groups</li>{{end}}</ul></li>{{end}}
</ul>{{else}}<p class="muted">no topics</p>{{end}}

<h2>Recent events <span class="muted">({{len .Events}} shown, newest first, up to {{.Limit}}{{with .Filter.Topic}}; topic {{.}}{{end}}{{with .Filter.Group}}; group {{.}}{{end}}{{with .Filter.Status}}; status {{.}}{{end}})</span></h2>
<p class="muted">Newest first. A send is one Emit; a process is one attempt of one consumer group's handler. An event's send and its attempts share a trace id when a tracer records them.</p>
<div class="scroll"><table id="events">
<colgroup><col style="width:8.8em"><col style="width:7em"><col style="width:11%"><col style="width:10%"><col style="width:9%"><col style="width:6.2em"><col style="width:4.8em"><col style="width:6em"><col style="width:11em"><col style="width:11em"><col></colgroup>
<tr><th>start</th><th>operation</th><th>topic</th><th>group</th><th>subscription</th><th>attempt</th><th>status</th><th>duration</th><th>event id</th><th>trace id</th><th>error</th></tr>
{{range .Events}}<tr{{if eq .Status "error"}} class="failed"{{end}}><td class="t">{{clock .Start}}</td><td>{{.Operation}}</td><td>{{.Topic}}</td><td>{{.Group}}</td><td>{{.Subscription}}</td><td class="n">{{if .Attempt}}{{.Attempt}}{{end}}</td><td class="{{.Status}}">{{.Status}}</td><td class="n">{{dur .Duration}}</td><td class="id" title="{{.EventID}}"><a href="?event={{.EventID}}"><code>{{.EventID}}</code></a></td>{{$id := .TraceID}}{{if $id}}<td class="id" title="{{$id}}">{{with $.TraceLink $id}}<a href="{{.}}" target="_blank" rel="noopener"><code>{{$id}}</code></a>{{else}}<code>{{$id}}</code>{{end}}</td>{{else}}<td class="muted" title="no span was recorded: no tracer that records is set up">–</td>{{end}}<td>{{.Error}}</td></tr>
{{else}}<tr><td colspan="11" class="muted">no events{{if or .Filter.Topic .Filter.Group .Filter.Status}} match the filters{{else}} yet{{end}}</td></tr>{{end}}
</table></div>
<script>
(function () {
  var form = document.getElementById("controls");
  document.getElementById("apply").style.display = "none";
  form.addEventListener("change", function (ev) {
    if (ev.target.tagName === "SELECT") { form.submit(); }
  });
  var box = document.getElementById("auto"), key = "eventstream.autorefresh", timer = null;
  try { box.checked = window.sessionStorage.getItem(key) === "1"; } catch (e) {}
  function arm() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (box.checked) { timer = setTimeout(function () { window.location.reload(); }, 2000); }
  }
  box.addEventListener("change", function () {
    try { window.sessionStorage.setItem(key, box.checked ? "1" : "0"); } catch (e) {}
    arm();
  });
  arm();
})();
</script>
</body>
</html>
`
