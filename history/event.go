package history

import (
	"cmp"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ArchiveSource is a Source that can list every entry its history holds,
// and say from when on it holds all of them; the bus's source is one. The
// event view reads it: a Source without it is read through Recent, and the
// view then says that it cannot tell what was dropped.
type ArchiveSource interface {
	Source
	// All returns every entry the history holds, in any order, and the
	// time from which on it holds every operation that ended: zero when
	// it has dropped nothing yet.
	All() (entries []Entry, completeFrom time.Time)
}

// EventView is one event's story as the history holds it: its sends, every
// attempt of every consumer group, its dead letters and the events it
// caused, each with its trace id. What the history no longer holds is said
// in Notes, never filled in.
type EventView struct {
	ID    string `json:"id"`
	Found bool   `json:"found"` // the history holds an operation of it
	Topic string `json:"topic,omitempty"`
	// CausationID and CorrelationID are the event's lineage ids; the view
	// of CausationID is the cause's.
	CausationID   string `json:"causation_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	// TraceID is the trace of its send (else of its first attempt), ""
	// when no span was recorded.
	TraceID string `json:"trace_id,omitempty"`
	// Sends are its Emits (oldest first): one, unless it was sent again.
	Sends []Entry `json:"sends"`
	// Groups are its consumer groups, each with every attempt held.
	Groups []GroupAttempts `json:"groups"`
	// DeadLetters are the sends of its dead letters, one per group that
	// gave up on it.
	DeadLetters []Entry `json:"dead_letters"`
	// Caused is the tree of events its handlers emitted, and theirs.
	Caused []CausedEvent `json:"caused"`
	// CompleteFrom is when the history starts holding every operation
	// (zero: it has dropped nothing); Notes say what that leaves out.
	CompleteFrom time.Time `json:"complete_from,omitzero"`
	Notes        []string  `json:"notes"`
}

// GroupAttempts is one consumer group's handling of an event.
type GroupAttempts struct {
	Group string `json:"group"`
	// Status is that of the last attempt held: StatusOK or StatusError.
	Status   string  `json:"status"`
	Attempts []Entry `json:"attempts"` // oldest first
}

// CausedEvent is one node of the tree of caused events: an event, the
// outcome of each of its groups, whether it was dead-lettered, and what it
// caused in turn.
type CausedEvent struct {
	ID      string `json:"id"`
	Topic   string `json:"topic"`
	TraceID string `json:"trace_id,omitempty"`
	// Status sums its outcome up: StatusOK when every group's last attempt
	// succeeded, StatusError when one failed, "dead-lettered" when a group
	// gave up on it, "no attempts" when the history holds none (no group,
	// or it is handled in another process).
	Status       string         `json:"status"`
	Groups       []GroupOutcome `json:"groups"`
	DeadLettered bool           `json:"dead_lettered,omitempty"`
	Caused       []CausedEvent  `json:"caused"`
	Sends        int            `json:"sends"`
	Truncated    bool           `json:"truncated,omitempty"` // deeper or wider than the view shows
}

// GroupOutcome is one group's last attempt at a caused event.
type GroupOutcome struct {
	Group    string `json:"group"`
	Attempts int    `json:"attempts"`
	Status   string `json:"status"`
	Error    string `json:"error,omitempty"`
}

// Statuses of a caused event beyond StatusOK and StatusError.
const (
	StatusDeadLettered = "dead-lettered"
	StatusNoAttempts   = "no attempts"
)

// The tree's bounds: a chain that loops (ids reused by a foreign producer)
// or fans out widely still makes a page of finite size.
const (
	maxTreeDepth = 16
	maxTreeNodes = 500
)

// serveEvent serves the event view when r asks for one — /events/{id} as
// JSON, /?event={id} as HTML (or JSON with format=json) — and reports
// whether it did.
func (h *handler) serveEvent(w http.ResponseWriter, r *http.Request) bool {
	path := strings.Trim(r.URL.Path, "/")
	id, isJSON := strings.CutPrefix(path, "events/")
	if !isJSON {
		if path != "" || !r.URL.Query().Has("event") {
			return false
		}
		id = r.URL.Query().Get("event")
	}
	if isJSON {
		// The id is a path segment: %2F in it is a slash of the id.
		if raw, err := url.PathUnescape(strings.TrimPrefix(strings.Trim(r.URL.EscapedPath(), "/"), "events/")); err == nil {
			id = raw
		}
	}
	v := h.eventView(id)
	if isJSON || wantsJSON(r) {
		if !v.Found {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotFound)
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(v)
			return true
		}
		writeJSON(w, v)
		return true
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !v.Found {
		w.WriteHeader(http.StatusNotFound)
	}
	q := url.Values{"event": {id}, "format": {"json"}}
	_ = eventPage.Execute(w, eventPageData{EventView: v, JSONQuery: "?" + q.Encode(), traceTemplate: h.cfg.traceURL})
	return true
}

// eventView builds the view of id from the whole history held.
func (h *handler) eventView(id string) EventView {
	var (
		all  []Entry
		from time.Time
		know bool
	)
	if as, ok := h.src.(ArchiveSource); ok {
		all, from = as.All()
		know = true
	} else {
		all = h.src.Recent(maxLimit)
	}
	idx := indexEntries(all)
	v := EventView{ID: id, CompleteFrom: from, Sends: []Entry{}, Groups: []GroupAttempts{},
		DeadLetters: []Entry{}, Caused: []CausedEvent{}, Notes: []string{}}
	own := idx.byID[id]
	v.Found = len(own) > 0
	for _, e := range own {
		if v.Topic == "" || e.Operation == "send" {
			v.Topic = e.Topic
		}
		if e.CausationID != "" {
			v.CausationID = e.CausationID
		}
		if e.CorrelationID != "" {
			v.CorrelationID = e.CorrelationID
		}
		if e.Operation == "send" {
			v.Sends = append(v.Sends, e)
		}
	}
	v.Groups = groupAttempts(own)
	v.TraceID = traceOf(v.Sends, own)
	for _, c := range idx.byCause[id] {
		if c.DeadLetter && c.Operation == "send" {
			v.DeadLetters = append(v.DeadLetters, c)
		}
	}
	nodes := 0
	v.Caused = idx.tree(id, 1, map[string]bool{id: true}, &nodes)

	// What the history cannot tell, said.
	switch {
	case !know:
		v.Notes = append(v.Notes, "This history cannot say what it dropped: the view shows what it holds now.")
	case !from.IsZero():
		v.Notes = append(v.Notes, "The history holds every operation that ended after "+from.UTC().Format(time.RFC3339Nano)+
			"; older ones were dropped to make room.")
	}
	if !v.Found {
		v.Notes = append(v.Notes, "The history holds no operation of this event: the id is unknown here, the event is older than what is held, or it was emitted and handled in other processes.")
		return v
	}
	if len(v.Sends) == 0 {
		v.Notes = append(v.Notes, "No send of this event is held: it was emitted by another process, or its send was dropped.")
	}
	if !from.IsZero() && earliest(own).Before(from) {
		v.Notes = append(v.Notes, "Operations of this event, and events it caused, that ended before then are not shown.")
	}
	if v.CausationID != "" && len(idx.byID[v.CausationID]) == 0 {
		v.Notes = append(v.Notes, "Its cause, "+v.CausationID+", is not held.")
	}
	if nodes >= maxTreeNodes {
		v.Notes = append(v.Notes, "The tree of caused events is cut after "+strconv.Itoa(maxTreeNodes)+" events.")
	}
	return v
}

// entryIndex finds entries by event id and by causation id, oldest first.
type entryIndex struct {
	byID, byCause map[string][]Entry
}

func indexEntries(all []Entry) entryIndex {
	slices.SortStableFunc(all, func(a, b Entry) int { return a.Start.Compare(b.Start) })
	idx := entryIndex{byID: map[string][]Entry{}, byCause: map[string][]Entry{}}
	for _, e := range all {
		idx.byID[e.EventID] = append(idx.byID[e.EventID], e)
		if e.CausationID != "" {
			idx.byCause[e.CausationID] = append(idx.byCause[e.CausationID], e)
		}
	}
	return idx
}

// tree returns the events caused by id (dead letters excluded: they are
// listed apart), in the order they were first seen.
func (x entryIndex) tree(id string, depth int, seen map[string]bool, nodes *int) []CausedEvent {
	out := []CausedEvent{}
	dead := map[string]bool{} // a dead letter's attempts are not marked: its send is
	for _, c := range x.byCause[id] {
		if c.DeadLetter {
			dead[c.EventID] = true
		}
	}
	for _, c := range x.byCause[id] {
		if seen[c.EventID] || dead[c.EventID] {
			continue
		}
		seen[c.EventID] = true
		if *nodes >= maxTreeNodes {
			break
		}
		*nodes++
		own := x.byID[c.EventID]
		n := CausedEvent{ID: c.EventID, Topic: c.Topic, Caused: []CausedEvent{}, Groups: []GroupOutcome{}}
		var sends []Entry
		for _, e := range own {
			if e.Operation == "send" {
				sends = append(sends, e)
			}
		}
		n.Sends = len(sends)
		n.TraceID = traceOf(sends, own)
		for _, g := range groupAttempts(own) {
			last := g.Attempts[len(g.Attempts)-1]
			n.Groups = append(n.Groups, GroupOutcome{Group: g.Group, Attempts: len(g.Attempts), Status: last.Status, Error: last.Error})
		}
		for _, d := range x.byCause[c.EventID] {
			if d.DeadLetter {
				n.DeadLettered = true
			}
		}
		n.Status = outcome(n)
		if depth < maxTreeDepth {
			n.Caused = x.tree(c.EventID, depth+1, seen, nodes)
		} else if len(x.byCause[c.EventID]) > 0 {
			n.Truncated = true
		}
		out = append(out, n)
	}
	return out
}

func outcome(n CausedEvent) string {
	switch {
	case n.DeadLettered:
		return StatusDeadLettered
	case len(n.Groups) == 0:
		return StatusNoAttempts
	}
	for _, g := range n.Groups {
		if g.Status != StatusOK {
			return StatusError
		}
	}
	return StatusOK
}

// groupAttempts groups the process entries of own by consumer group,
// groups by name, attempts in order.
func groupAttempts(own []Entry) []GroupAttempts {
	var out []GroupAttempts
	at := map[string]int{}
	for _, e := range own {
		if e.Operation != "process" {
			continue
		}
		i, ok := at[e.Group]
		if !ok {
			i = len(out)
			at[e.Group] = i
			out = append(out, GroupAttempts{Group: e.Group})
		}
		out[i].Attempts = append(out[i].Attempts, e)
	}
	slices.SortFunc(out, func(a, b GroupAttempts) int { return cmp.Compare(a.Group, b.Group) })
	for i := range out {
		slices.SortStableFunc(out[i].Attempts, func(a, b Entry) int { return cmp.Compare(a.Attempt, b.Attempt) })
		out[i].Status = out[i].Attempts[len(out[i].Attempts)-1].Status
	}
	if out == nil {
		out = []GroupAttempts{}
	}
	return out
}

// traceOf is the trace of the first send, else of the first operation.
func traceOf(sends, own []Entry) string {
	for _, es := range [][]Entry{sends, own} {
		for _, e := range es {
			if e.TraceID != "" {
				return e.TraceID
			}
		}
	}
	return ""
}

func earliest(es []Entry) time.Time {
	t := es[0].Start
	for _, e := range es[1:] {
		if e.Start.Before(t) {
			t = e.Start
		}
	}
	return t
}

type eventPageData struct {
	EventView
	JSONQuery     string
	traceTemplate string
}

// TraceLink is the trace viewer's URL for id, or "" without a template.
func (p eventPageData) TraceLink(id string) string {
	return pageData{traceTemplate: p.traceTemplate}.TraceLink(id)
}

// EventLink is the view of another event, relative to the page's own URL.
func (p eventPageData) EventLink(id string) string {
	return "?" + url.Values{"event": {id}}.Encode()
}

// eventPage shares the page's functions (dur, clock) through a clone of
// its template set.
var eventPage = template.Must(template.Must(page.Clone()).New("event").Funcs(template.FuncMap{
	"traceArgs": func(p eventPageData, id string) traceArgs { return traceArgs{p, id} },
	"nodeArgs":  func(p eventPageData, ns []CausedEvent) nodeArgs { return nodeArgs{p, ns} },
}).Parse(eventHTML))

// The arguments of the event page's sub-templates.
type (
	traceArgs struct {
		Page eventPageData
		ID   string
	}
	nodeArgs struct {
		Page  eventPageData
		Nodes []CausedEvent
	}
)

const eventHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Event {{.ID}} · EventStream debug page</title>
<style>
` + baseCSS + `h1{font-size:1.3em;margin:0 0 .2em;overflow-wrap:anywhere}h2{font-size:1.1em;margin:1.5em 0 .4em}
p{margin:.3em 0}
td{overflow-wrap:anywhere}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:12px ui-monospace,monospace}.ok{color:#1a7f37}.error,.dead-lettered{color:#cf222e;font-weight:600}
tr.failed td{background:#fff5f5}
.muted{color:#666}ul.tree,ul.tree ul{list-style:none;margin:.2em 0;padding-left:1.4em}
ul.tree li{margin:.25em 0}ul.tree li::before{content:"↳ ";color:#999}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:.5em 0}dt{color:#666}dd{margin:0}
.notes{background:#fff8e1;border:1px solid #f0d98c;padding:.4em .7em}
</style>
</head>
<body>
<p class="muted"><a href="?">← debug page</a> · <a id="json" href="{{.JSONQuery}}">this event as JSON</a></p>
<h1>Event <code>{{.ID}}</code></h1>
{{if .Found}}<dl id="lineage">
<dt>topic</dt><dd>{{.Topic}}</dd>
<dt>caused by</dt><dd>{{with .CausationID}}<a href="{{$.EventLink .}}"><code>{{.}}</code></a>{{else}}<span class="muted">nothing: it starts its chain</span>{{end}}</dd>
<dt>chain (correlation id)</dt><dd>{{with .CorrelationID}}{{if eq . $.ID}}<span class="muted">its own id</span>{{else}}<a href="{{$.EventLink .}}"><code>{{.}}</code></a>{{end}}{{end}}</dd>
<dt>trace</dt><dd>{{template "event-trace" (traceArgs $ .TraceID)}}</dd>
</dl>{{end}}
{{if .Notes}}<div class="notes" id="notes">{{range .Notes}}<p>{{.}}</p>{{end}}</div>{{end}}
{{if .Found}}
<h2>Sends</h2>
{{if .Sends}}<table id="sends"><tr><th>start</th><th>topic</th><th>status</th><th>duration</th><th>trace</th><th>error</th></tr>
{{range .Sends}}<tr{{if eq .Status "error"}} class="failed"{{end}}><td>{{clock .Start}}</td><td>{{.Topic}}</td><td class="{{.Status}}">{{.Status}}</td><td class="n">{{dur .Duration}}</td><td>{{template "event-trace" (traceArgs $ .TraceID)}}</td><td>{{.Error}}</td></tr>
{{end}}</table>{{else}}<p class="muted">none held</p>{{end}}

<h2>Attempts by consumer group</h2>
{{if .Groups}}<table id="attempts"><tr><th>group</th><th>attempt</th><th>start</th><th>status</th><th>duration</th><th>subscription</th><th>trace</th><th>error</th></tr>
{{range .Groups}}{{$g := .Group}}{{range .Attempts}}<tr{{if eq .Status "error"}} class="failed"{{end}}><td>{{$g}}</td><td class="n">{{.Attempt}}</td><td>{{clock .Start}}</td><td class="{{.Status}}">{{.Status}}</td><td class="n">{{dur .Duration}}</td><td><code>{{.Subscription}}</code></td><td>{{template "event-trace" (traceArgs $ .TraceID)}}</td><td>{{.Error}}</td></tr>
{{end}}{{end}}</table>{{else}}<p class="muted">none held: no group handled it in this process</p>{{end}}

<h2>Dead letter</h2>
{{if .DeadLetters}}<table id="deadletters"><tr><th>start</th><th>dead-letter topic</th><th>event id</th><th>status</th><th>trace</th></tr>
{{range .DeadLetters}}<tr><td>{{clock .Start}}</td><td>{{.Topic}}</td><td><a href="{{$.EventLink .EventID}}"><code>{{.EventID}}</code></a></td><td class="{{.Status}}">{{.Status}}</td><td>{{template "event-trace" (traceArgs $ .TraceID)}}</td></tr>
{{end}}</table>{{else}}<p class="muted">none</p>{{end}}

<h2>Events it caused</h2>
{{if .Caused}}<ul class="tree" id="caused">{{template "event-nodes" (nodeArgs $ .Caused)}}</ul>{{else}}<p class="muted">none held</p>{{end}}
{{end}}
</body>
</html>
{{define "event-trace"}}{{if .ID}}{{with .Page.TraceLink .ID}}<a href="{{.}}" target="_blank" rel="noopener"><code>{{$.ID}}</code></a>{{else}}<code>{{.ID}}</code>{{end}}{{else}}<span class="muted" title="no span was recorded: no tracer that records is set up">–</span>{{end}}{{end}}
{{define "event-nodes"}}{{$p := .Page}}{{range .Nodes}}<li><a href="{{$p.EventLink .ID}}"><code>{{.ID}}</code></a> on <b>{{.Topic}}</b>: <span class="{{.Status}}">{{.Status}}</span>{{range .Groups}} · {{.Group}} <span class="{{.Status}}">{{.Status}}</span> after {{.Attempts}} attempt{{if ne .Attempts 1}}s{{end}}{{with .Error}} <span class="muted">({{.}})</span>{{end}}{{end}} · trace {{template "event-trace" (traceArgs $p .TraceID)}}{{if .Truncated}} <span class="muted">(deeper events not shown)</span>{{end}}
{{if .Caused}}<ul>{{template "event-nodes" (nodeArgs $p .Caused)}}</ul>{{end}}</li>
{{end}}{{end}}`
