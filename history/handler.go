package history

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
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
}

// Source is what Handler shows. The bus implements it; NewSource builds one
// from a Recorder, a StatsReader and a topology function.
type Source interface {
	Recent(n int) []Entry
	Stats(ctx context.Context) (Stats, error)
	Topology() Topology
}

// NewSource returns a Source over rec, stats and topology; any of them may
// be nil (giving no entries, zero stats, an empty topology).
func NewSource(rec *Recorder, stats *StatsReader, topology func() Topology) Source {
	return source{rec: rec, stats: stats, topo: topology}
}

type source struct {
	rec   *Recorder
	stats *StatsReader
	topo  func() Topology
}

func (s source) Recent(n int) []Entry {
	if s.rec == nil {
		return nil
	}
	return s.rec.Recent(n)
}

func (s source) Stats(ctx context.Context) (Stats, error) {
	if s.stats == nil {
		return Stats{}, nil
	}
	return s.stats.Collect(ctx)
}

func (s source) Topology() Topology {
	if s.topo == nil {
		return Topology{}
	}
	return s.topo()
}

// DefaultLimit is the number of recent events shown when the request has no
// valid ?n= (1 to MaxLimit).
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// Document is the combined JSON served at the handler's root.
type Document struct {
	Time     time.Time `json:"time"`
	Events   []Entry   `json:"events"`
	Stats    Stats     `json:"stats"`
	Topology Topology  `json:"topology"`
}

// Handler serves src:
//
//	/          HTML page (recent events, stats, topology), or the combined
//	           JSON Document with ?format=json or Accept: application/json
//	/events    JSON list of recent entries, newest first (?n=, default 100)
//	/stats     JSON Stats
//	/topology  JSON Topology
//
// The sub-paths serve HTML-free JSON always. Mount it under a prefix with
// http.StripPrefix("/debug/eventstream", history.Handler(src)). Only GET and
// HEAD are allowed.
func Handler(src Source) http.Handler {
	return &handler{src: src}
}

type handler struct{ src Source }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	n := DefaultLimit
	if v, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && v > 0 {
		n = min(v, MaxLimit)
	}
	switch strings.Trim(r.URL.Path, "/") {
	case "":
		doc, err := h.document(r.Context(), n)
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
		if err := page.Execute(w, pageData{Document: doc, Limit: n}); err != nil {
			// Headers are gone; nothing better to do than stop.
			return
		}
	case "events":
		writeJSON(w, nonNil(h.src.Recent(n)))
	case "stats":
		st, err := h.src.Stats(r.Context())
		if err != nil {
			http.Error(w, "stats: "+err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, normStats(st))
	case "topology":
		writeJSON(w, normTopology(h.src.Topology()))
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) document(ctx context.Context, n int) (Document, error) {
	st, err := h.src.Stats(ctx)
	if err != nil {
		return Document{}, err
	}
	return Document{
		Time:     time.Now(),
		Events:   nonNil(h.src.Recent(n)),
		Stats:    normStats(st),
		Topology: normTopology(h.src.Topology()),
	}, nil
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
	Document
	Limit int
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

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>EventStream</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.5em 0 .4em}
table{border-collapse:collapse;background:#fff;min-width:40em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;white-space:nowrap}
th{background:#f0f0f0}.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
code{font:12px ui-monospace,monospace}.ok{color:#1a7f37}.error{color:#cf222e;font-weight:600}
.muted{color:#777}ul{margin:.2em 0}
</style>
</head>
<body>
<h1>EventStream</h1>
<div class="muted">as of {{clock .Time}} · <a href="?format=json">JSON</a> · <label><input type="checkbox" id="auto"> refresh every 2 s</label></div>

<h2>Stats</h2>
<div class="scroll"><table id="stats">
<tr><th>topic</th><th>group</th><th>emitted</th><th>emit failed</th><th>delivered</th><th>succeeded</th><th>failed attempts</th><th>retried</th><th>dead-lettered</th><th>in flight</th><th>p50</th><th>p95</th><th>p99</th><th>delivery p50</th><th>delivery p95</th><th>delivery p99</th></tr>
{{range .Stats.Rows}}<tr><td>{{.Topic}}</td><td>{{.Group}}</td><td class="n">{{.Emitted}}</td><td class="n">{{.EmitFailed}}</td><td class="n">{{.Delivered}}</td><td class="n">{{.Succeeded}}</td><td class="n">{{.Failed}}</td><td class="n">{{.Retried}}</td><td class="n">{{.DeadLettered}}</td><td class="n">{{.InFlight}}</td><td class="n">{{dur .LatencyP50}}</td><td class="n">{{dur .LatencyP95}}</td><td class="n">{{dur .LatencyP99}}</td><td class="n">{{dur .DeliveryP50}}</td><td class="n">{{dur .DeliveryP95}}</td><td class="n">{{dur .DeliveryP99}}</td></tr>
{{end}}{{with .Stats}}<tr><th>total</th><th></th><th class="n">{{.Emitted}}</th><th class="n">{{.EmitFailed}}</th><th class="n">{{.Delivered}}</th><th class="n">{{.Succeeded}}</th><th class="n">{{.Failed}}</th><th class="n">{{.Retried}}</th><th class="n">{{.DeadLettered}}</th><th class="n">{{.InFlight}}</th><th class="n">{{dur .LatencyP50}}</th><th class="n">{{dur .LatencyP95}}</th><th class="n">{{dur .LatencyP99}}</th><th class="n">{{dur .DeliveryP50}}</th><th class="n">{{dur .DeliveryP95}}</th><th class="n">{{dur .DeliveryP99}}</th></tr>{{end}}
</table></div>

<h2>Topology</h2>
{{if .Topology.Topics}}<ul id="topology">{{range .Topology.Topics}}
<li><b>{{.Name}}</b><ul>{{range .Groups}}<li>group <b>{{.Name}}</b>: {{range $i, $s := .Subscriptions}}{{if $i}}, {{end}}<code>{{$s}}</code>{{end}}</li>{{else}}<li class="muted">no consumer groups</li>{{end}}</ul></li>{{end}}
</ul>{{else}}<p class="muted">no topics</p>{{end}}

<h2>Recent events <span class="muted">(last {{len .Events}} spans, newest first, up to {{.Limit}})</span></h2>
<div class="scroll"><table id="events">
<tr><th>start</th><th>operation</th><th>topic</th><th>group</th><th>subscription</th><th>attempt</th><th>status</th><th>duration</th><th>event id</th><th>trace id</th><th>error</th></tr>
{{range .Events}}<tr><td>{{clock .Start}}</td><td>{{.Operation}}</td><td>{{.Topic}}</td><td>{{.Group}}</td><td>{{.Subscription}}</td><td class="n">{{if .Attempt}}{{.Attempt}}{{end}}</td><td class="{{.Status}}">{{.Status}}</td><td class="n">{{dur .Duration}}</td><td><code>{{.EventID}}</code></td><td><code>{{.TraceID}}</code></td><td>{{.Error}}</td></tr>
{{else}}<tr><td colspan="11" class="muted">no events yet</td></tr>{{end}}
</table></div>
<script>
(function () {
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
