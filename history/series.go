package history

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Series is one topic's (Group empty: its emits) or one consumer group's
// figures per second over the last minutes, oldest point first: Rate is
// events per second (emitted, or delivered to the group), P99 the 99th
// percentile of the handler durations that ended in that second (0 when
// none did; group series only). Point i is at Start + i·Step.
type Series struct {
	Topic string          `json:"topic"`
	Group string          `json:"group,omitempty"`
	Start time.Time       `json:"start"`
	Step  time.Duration   `json:"step_ns"`
	Rate  []float64       `json:"rate"`
	P99   []time.Duration `json:"p99_ns,omitempty"`
}

// SeriesSource is a Source that also keeps per-second figures; Handler then
// plots them on the page and serves them as JSON at /series. The bus's
// sampling starts with the first call, so the plots begin when someone
// first looks.
type SeriesSource interface {
	Source
	Series() []Series
}

// series returns the source's per-second figures, nil without any.
func (h *handler) series() []Series {
	if ss, ok := h.src.(SeriesSource); ok {
		return ss.Series()
	}
	return nil
}

func (h *handler) serveSeries(w http.ResponseWriter) {
	s := h.series()
	if s == nil {
		s = []Series{}
	}
	writeJSON(w, s)
}

// The plots' geometry: the width spans at least minSpan points, newest at
// the right edge, so a young plot fills from the right and an old one shows
// all the points kept.
const (
	plotW, plotH = 240, 36
	minSpan      = 60
)

// plot is one small SVG line chart as the template draws it.
type plot struct {
	W, H      int
	Points    string // polyline points
	Area      string // the polygon under the line
	N         int    // points drawn
	Max, Last string // labels
	Span      int    // points the width stands for
}

func newPlot(vals []float64, label func(float64) string) plot {
	p := plot{W: plotW, H: plotH, N: len(vals), Span: max(len(vals), minSpan)}
	if len(vals) == 0 {
		return p
	}
	top := 0.0
	for _, v := range vals {
		top = max(top, v)
	}
	var b strings.Builder
	step := float64(plotW) / float64(p.Span-1)
	first := float64(plotW) - float64(len(vals)-1)*step
	for i, v := range vals {
		x := float64(plotW) - float64(len(vals)-1-i)*step
		y := float64(plotH) - 1
		if top > 0 {
			y -= v / top * float64(plotH-3)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(max(x, 0), 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	p.Points = b.String()
	base := strconv.Itoa(plotH)
	p.Area = strconv.FormatFloat(first, 'f', 1, 64) + "," + base + " " + p.Points + " " + strconv.Itoa(plotW) + "," + base
	p.Max, p.Last = label(top), label(vals[len(vals)-1])
	return p
}

func ratePlot(s Series) plot {
	return newPlot(s.Rate, func(v float64) string {
		if v >= 100 {
			return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + "/s"
	})
}

func p99Plot(s Series) plot {
	vals := make([]float64, len(s.P99))
	for i, d := range s.P99 {
		vals[i] = float64(d)
	}
	return newPlot(vals, func(v float64) string { return durText(time.Duration(v)) })
}

func durText(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64) + " µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

// The plots section of the page, between the stats and the topology.
var _ = template.Must(page.Funcs(map[string]any{"ratePlot": ratePlot, "p99Plot": p99Plot}).New("plots").Parse(plotsHTML))

const plotsHTML = `<h2>Last minutes</h2>
<style>#plots td{vertical-align:middle;white-space:nowrap}#plots svg{vertical-align:middle}#stats th,#stats td{padding:.25em .35em}</style>
<p class="muted">Per second, over the last 5 minutes at most: events emitted per topic, events delivered per consumer group and the p99 of its handler durations. Sampled from the stats above while someone looks at this page (or its /series JSON): the plots begin with the first look and stop 10 minutes after the last.</p>
{{if .Series}}<div class="scroll"><table id="plots">
<tr><th>topic</th><th>group</th><th>events per second</th><th>p99 handler latency</th></tr>
{{range .Series}}<tr><td class="name">{{.Topic}}</td><td class="name">{{.Group}}</td><td>{{template "plot" ratePlot .}}</td><td>{{if .Group}}{{template "plot" p99Plot .}}{{end}}</td></tr>
{{end}}</table></div>{{else}}<p class="muted">no figures yet</p>{{end}}
{{define "plot"}}<svg class="plot" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" data-points="{{.N}}" role="img"><rect width="{{.W}}" height="{{.H}}" fill="#f6f8fa"/>{{if .N}}<polygon points="{{.Area}}" fill="#0969da" fill-opacity="0.12"/><polyline points="{{.Points}}" fill="none" stroke="#0969da" stroke-width="1.5"/>{{end}}</svg> <span class="muted">{{if .N}}now {{.Last}}, max {{.Max}} <small>(last {{.Span}} s)</small>{{else}}collecting…{{end}}</span>{{end}}`
