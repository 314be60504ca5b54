package history

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeadLetter is one event whose retries ran out, as its dead-letter topic
// holds it: the original event's id, topic and payload, and why it failed.
type DeadLetter struct {
	// ID is the original event's id; a replay re-emits it with this id.
	ID string `json:"id"`
	// Topic is the original topic, DeadLetterTopic where the dead letter is.
	Topic           string `json:"topic"`
	DeadLetterTopic string `json:"dead_letter_topic"`
	// Group is the consumer group whose handler gave up.
	Group     string `json:"group"`
	Reason    string `json:"reason"`
	ErrorType string `json:"error_type"`
	Attempts  int    `json:"attempts"`
	// Time is when the event was dead-lettered.
	Time time.Time `json:"time"`
	// TraceID is the trace of the original event, which the dead letter
	// joined; empty when no trace context travelled with it.
	TraceID string `json:"trace_id,omitempty"`
	// ReplayCount is how often the event was replayed before it died again.
	ReplayCount int    `json:"replay_count,omitempty"`
	Key         string `json:"key,omitempty"`
	// Partition and Offset locate the dead letter in Kafka; -1 in memory
	// mode.
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	// Data is the payload as JSON (the record's value on Kafka, which may
	// be any bytes: then it is a JSON string of them).
	Data string `json:"data"`
	// ValueOmitted is the size of the original value when the dead letter
	// was written without it (the broker refused the record for its size):
	// the value is then read from the original topic at
	// OriginalPartition/OriginalOffset, and a replay skips it.
	ValueOmitted      int   `json:"value_omitted,omitempty"`
	OriginalPartition int32 `json:"original_partition,omitempty"`
	OriginalOffset    int64 `json:"original_offset,omitempty"`
}

// DeadLetterFilter selects dead letters; an empty field matches all.
type DeadLetterFilter struct {
	// Topic is the original topic.
	Topic string `json:"topic,omitempty"`
	// Group is the consumer group that dead-lettered the event.
	Group string `json:"group,omitempty"`
	// ErrorType is the failure's error.type, as the dead letter records it.
	ErrorType string `json:"error_type,omitempty"`
	// Since and Until bound the time the event was dead-lettered: Since
	// inclusive, Until exclusive; zero is unbounded.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// IDs are original event ids; any of them matches.
	IDs []string `json:"ids,omitempty"`
}

// Match reports whether d passes the filter.
func (f DeadLetterFilter) Match(d DeadLetter) bool {
	return (f.Topic == "" || d.Topic == f.Topic) &&
		(f.Group == "" || d.Group == f.Group) &&
		(f.ErrorType == "" || d.ErrorType == f.ErrorType) &&
		(f.Since.IsZero() || !d.Time.Before(f.Since)) &&
		(f.Until.IsZero() || d.Time.Before(f.Until)) &&
		(len(f.IDs) == 0 || slices.Contains(f.IDs, d.ID))
}

// ReplayResult counts what a replay did: dead letters re-emitted, left
// out by its filter, and those whose re-emit failed (they stay in their
// dead-letter topic). DryRun says nothing was emitted or committed:
// Replayed is then what would have been.
type ReplayResult struct {
	Replayed int  `json:"replayed"`
	Skipped  int  `json:"skipped"`
	Failed   int  `json:"failed"`
	DryRun   bool `json:"dry_run,omitempty"`
}

// DeadLetterSource is what the dead-letter view needs beyond a Source; the
// bus's DebugHandler serves one. A Source without it has no dead-letter
// view (404).
type DeadLetterSource interface {
	// DeadLetters returns up to n dead letters matching f, newest first.
	DeadLetters(ctx context.Context, f DeadLetterFilter, n int) ([]DeadLetter, error)
	// ReplayDeadLetters re-emits the dead letters of f.Topic that match f,
	// to every consumer group of the topic, or to toGroup only.
	ReplayDeadLetters(ctx context.Context, f DeadLetterFilter, toGroup string) (ReplayResult, error)
}

// WithDeadLetterReplay lets the page replay dead letters: a POST to
// /deadletters/replay with the view's filters (a topic is required). Off by
// default, when that path answers 403: the page has no authentication of
// its own, so whoever reaches it could re-emit events. Turn it on only
// behind access control of your own.
func WithDeadLetterReplay() HandlerOption {
	return handlerOptionFunc(func(c *handlerConfig) { c.replay = true })
}

// serveDeadLetters answers /deadletters (HTML, or JSON with ?format=json
// or Accept: application/json) and POST /deadletters/replay; it reports
// false for every other path.
func (h *handler) serveDeadLetters(w http.ResponseWriter, r *http.Request) bool {
	path := strings.Trim(r.URL.Path, "/")
	if path != "deadletters" && path != "deadletters/replay" {
		return false
	}
	src, ok := h.src.(DeadLetterSource)
	if !ok {
		http.NotFound(w, r)
		return true
	}
	if path == "deadletters/replay" {
		h.replayDeadLetters(w, r, src)
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return true
	}
	q := r.URL.Query()
	f, err := parseDeadLetterFilter(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return true
	}
	n := defaultLimit
	if v, err := strconv.Atoi(q.Get("n")); err == nil && v > 0 {
		n = min(v, maxLimit)
	}
	dls, err := src.DeadLetters(r.Context(), f, n)
	if err != nil {
		http.Error(w, "dead letters: "+err.Error(), http.StatusInternalServerError)
		return true
	}
	if dls == nil {
		dls = []DeadLetter{}
	}
	if wantsJSON(r) {
		writeJSON(w, dls)
		return true
	}
	topics, groups, types := map[string]bool{f.Topic: true}, map[string]bool{f.Group: true}, map[string]bool{f.ErrorType: true}
	for _, t := range h.src.Topology().Topics {
		topics[t.Name] = true
		for _, g := range t.Groups {
			groups[g.Name] = true
		}
	}
	for _, d := range dls {
		topics[d.Topic], groups[d.Group], types[d.ErrorType] = true, true, true
	}
	jq := url.Values{}
	for k, v := range q {
		jq[k] = v
	}
	jq.Set("format", "json")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = deadLetterPage.Execute(w, deadLetterPageData{
		Time: time.Now(), DeadLetters: dls, Filter: f, Limit: n,
		Topics: sortedNames(topics), Groups: sortedNames(groups), ErrorTypes: sortedNames(types),
		JSONQuery: "?" + jq.Encode(), Replay: h.cfg.replay, Result: q.Get("replayed") != "",
		ResultText: q.Get("replayed"),
		pageData:   pageData{traceTemplate: h.cfg.traceURL},
	})
	return true
}

// replayDeadLetters is POST /deadletters/replay: the filters come from the
// form (or the query), with to_group naming the one consumer group to
// replay to. It answers JSON with the ReplayResult, or, for a form posted
// by the page, a redirect back to the list with the counts.
func (h *handler) replayDeadLetters(w http.ResponseWriter, r *http.Request, src DeadLetterSource) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !h.cfg.replay {
		http.Error(w, "replay from this page is off (history.WithDeadLetterReplay turns it on)", http.StatusForbidden)
		return
	}
	// A page elsewhere that the operator's browser opens must not post here
	// (Sec-Fetch-Site / Origin checks; curl and other clients pass).
	if err := new(http.CrossOriginProtection).Check(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := parseDeadLetterFilter(r.Form)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f.Topic == "" {
		http.Error(w, "a topic is required to replay", http.StatusBadRequest)
		return
	}
	res, err := src.ReplayDeadLetters(r.Context(), f, r.Form.Get("to_group"))
	if err != nil && res == (ReplayResult{}) {
		http.Error(w, "replay: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if r.Form.Get("page") == "" {
		if err != nil {
			w.Header().Set("X-Replay-Error", strings.ReplaceAll(err.Error(), "\n", " "))
		}
		writeJSON(w, res)
		return
	}
	back := url.Values{}
	for _, k := range []string{"topic", "group", "error_type", "since", "until", "id"} {
		if v := r.Form.Get(k); v != "" {
			back.Set(k, v)
		}
	}
	back.Set("replayed", "replayed "+strconv.Itoa(res.Replayed)+", skipped "+strconv.Itoa(res.Skipped)+", failed "+strconv.Itoa(res.Failed))
	// Relative to this request's URL, which the browser knows whole: the
	// handler may be mounted under any prefix (http.Redirect would resolve
	// it against the path with the prefix stripped).
	w.Header().Set("Location", "../deadletters?"+back.Encode())
	w.WriteHeader(http.StatusSeeOther)
}

// parseDeadLetterFilter reads topic, group, error_type, since and until
// (RFC 3339) and id (repeated or comma-separated).
func parseDeadLetterFilter(q url.Values) (DeadLetterFilter, error) {
	f := DeadLetterFilter{Topic: q.Get("topic"), Group: q.Get("group"), ErrorType: q.Get("error_type")}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, errors.New(p.name + " must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
			}
			*p.t = t
		}
	}
	for _, v := range q["id"] {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				f.IDs = append(f.IDs, id)
			}
		}
	}
	return f, nil
}

type deadLetterPageData struct {
	pageData
	Time                       time.Time
	DeadLetters                []DeadLetter
	Filter                     DeadLetterFilter
	Limit                      int
	Topics, Groups, ErrorTypes []string
	JSONQuery                  string
	Replay, Result             bool
	ResultText                 string
}

// IDs is the id filter as the form shows it.
func (p deadLetterPageData) IDs() string { return strings.Join(p.Filter.IDs, ",") }

// Filtered reports whether any filter is set.
func (p deadLetterPageData) Filtered() bool {
	f := p.Filter
	return f.Topic != "" || f.Group != "" || f.ErrorType != "" || !f.Since.IsZero() || !f.Until.IsZero() || len(f.IDs) > 0
}

var deadLetterPage = template.Must(template.New("deadletters").Funcs(template.FuncMap{
	"clock":   func(t time.Time) string { return t.Format("2006-01-02 15:04:05.000") },
	"rfc3339": func(t time.Time) string { return formatTimeFilter(t) },
}).Parse(deadLetterHTML))

func formatTimeFilter(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

const deadLetterHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>EventStream dead letters</title>
<style>
` + baseCSS + `h1{font-size:1.4em;margin:0 0 .2em}p{margin:.3em 0}
td{overflow-wrap:anywhere}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nw{white-space:nowrap}.scroll{overflow-x:auto}
code{font:12px ui-monospace,monospace}.muted{color:#666}.note{background:#eef6ff;border:1px solid #bcd;padding:.4em .7em}
form{display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center;margin:.8em 0;padding:.5em .7em;background:#fff;border:1px solid #ddd}
select{max-width:16em}
</style>
</head>
<body>
<h1>Dead letters</h1>
<p>Events whose last attempt failed, newest first, as their dead-letter topics hold them. <a href="./">back to the debug page</a> · <a href="{{.JSONQuery}}">this list as JSON</a></p>
<p class="muted">As of {{clock .Time}}</p>
{{if .Result}}<p class="note" id="result">{{.ResultText}}</p>{{end}}
<form id="filters" method="get" action="deadletters">
<label>topic <select name="topic"><option value="">all</option>{{range .Topics}}<option{{if eq . $.Filter.Topic}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>group <select name="group"><option value="">all</option>{{range .Groups}}<option{{if eq . $.Filter.Group}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>error type <select name="error_type"><option value="">all</option>{{range .ErrorTypes}}<option{{if eq . $.Filter.ErrorType}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>since <input name="since" size="22" placeholder="RFC 3339" value="{{rfc3339 .Filter.Since}}"></label>
<label>until <input name="until" size="22" placeholder="RFC 3339" value="{{rfc3339 .Filter.Until}}"></label>
<label>id <input name="id" size="30" value="{{.IDs}}"></label>
<button type="submit">apply</button>
</form>
{{if .Replay}}<form id="replay" method="post" action="deadletters/replay">
<input type="hidden" name="page" value="1">
{{with .Filter.Topic}}<input type="hidden" name="topic" value="{{.}}">{{end}}{{with .Filter.Group}}<input type="hidden" name="group" value="{{.}}">{{end}}{{with .Filter.ErrorType}}<input type="hidden" name="error_type" value="{{.}}">{{end}}{{with rfc3339 .Filter.Since}}<input type="hidden" name="since" value="{{.}}">{{end}}{{with rfc3339 .Filter.Until}}<input type="hidden" name="until" value="{{.}}">{{end}}{{with .IDs}}<input type="hidden" name="id" value="{{.}}">{{end}}
{{if .Filter.Topic}}<button type="submit">replay the dead letters of {{.Filter.Topic}} that match these filters</button>{{with .Filter.Group}} <label><input type="checkbox" name="to_group" value="{{.}}" checked> to group {{.}} only</label>{{end}}{{else}}<span class="muted">choose a topic to replay its dead letters</span>{{end}}
</form>{{else}}<p class="muted">Replay from this page is off (the page has no authentication of its own); use the API or the command-line tool.</p>{{end}}
<div class="scroll"><table id="deadletters">
<tr><th>dead-lettered</th><th>topic</th><th>group</th><th>error type</th><th>reason</th><th>attempts</th><th>replays</th><th>event id</th><th>trace id</th><th>where</th></tr>
{{range .DeadLetters}}<tr><td class="n">{{clock .Time}}</td><td class="nw">{{.Topic}}</td><td class="nw">{{.Group}}</td><td><code>{{.ErrorType}}</code></td><td>{{.Reason}}</td><td class="n">{{.Attempts}}</td><td class="n">{{.ReplayCount}}</td><td class="nw"><code>{{.ID}}</code></td>{{$id := .TraceID}}<td class="nw">{{if $id}}{{with $.TraceLink $id}}<a href="{{.}}" target="_blank" rel="noopener"><code>{{$id}}</code></a>{{else}}<code>{{$id}}</code>{{end}}{{else}}<span class="muted">–</span>{{end}}</td><td class="nw"><code>{{.DeadLetterTopic}}{{if ge .Offset 0}} {{.Partition}}/{{.Offset}}{{end}}</code></td></tr>
{{else}}<tr><td colspan="10" class="muted">no dead letters{{if .Filtered}} match the filters{{end}}</td></tr>{{end}}
</table></div>
<p class="muted">Up to {{.Limit}} shown (?n= for more).</p>
<script>
(function () {
  var form = document.getElementById("filters");
  form.addEventListener("change", function (ev) {
    if (ev.target.tagName === "SELECT") { form.submit(); }
  });
})();
</script>
</body>
</html>
`
