package history_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream/history"
)

type seriesSource struct {
	fakeSource
	series []history.Series
}

func (s seriesSource) Series() []history.Series { return s.series }

// A SeriesSource's figures are plotted on the page, one SVG per figure with
// its points, and served as JSON at /series; the time lag is a stats column.
func TestHandlerPlotsSeries(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := seriesSource{fakeSource: testSource(), series: []history.Series{
		{Topic: "orders", Start: start, Step: time.Second, Rate: []float64{1, 2, 3}},
		{Topic: "orders", Group: "billing", Start: start, Step: time.Second, Rate: []float64{0, 5, 10},
			P99: []time.Duration{0, time.Millisecond, 2 * time.Millisecond}},
	}}
	src.stats.Rows[0].TimeLag = 1500 * time.Millisecond
	h := history.Handler(src)

	rec := get(t, h, "/series", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("/series: %d", rec.Code)
	}
	var got []history.Series
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Group != "billing" || len(got[1].P99) != 3 || got[1].P99[2] != 2*time.Millisecond || !got[1].Start.Equal(start) {
		t.Fatalf("/series: %+v", got)
	}

	page := get(t, h, "/", nil).Body.String()
	plots := regexp.MustCompile(`<svg class="plot"[^>]*data-points="(\d+)"`).FindAllStringSubmatch(page, -1)
	if len(plots) != 3 { // the topic's rate; the group's rate and p99
		t.Fatalf("%d plots, want 3", len(plots))
	}
	for _, p := range plots {
		if p[1] != "3" {
			t.Errorf("plot with %s points, want 3", p[1])
		}
	}
	for _, want := range []string{"now 10.0/s, max 10.0/s", "now 2.0 ms, max 2.0 ms", "1.50 s"} {
		if !strings.Contains(page, want) {
			t.Errorf("page does not show %q", want)
		}
	}
	// The newest point is at the right edge, the highest at the top.
	if !strings.Contains(page, `240.0,2.0"`) {
		t.Error("the newest, highest point is not at the top right")
	}

	var doc struct {
		Series []history.Series `json:"series"`
	}
	if err := json.Unmarshal(get(t, h, "/?format=json", nil).Body.Bytes(), &doc); err != nil || len(doc.Series) != 2 {
		t.Errorf("the page's JSON carries %d series (%v), want 2", len(doc.Series), err)
	}
}

// A plain Source has no figures: /series is an empty list and the page
// says so, with nothing drawn.
func TestHandlerWithoutSeries(t *testing.T) {
	h := history.Handler(testSource())
	if body := strings.TrimSpace(get(t, h, "/series", nil).Body.String()); body != "[]" {
		t.Errorf("/series = %s, want []", body)
	}
	page := get(t, h, "/", nil).Body.String()
	if strings.Contains(page, `<svg class="plot"`) || !strings.Contains(page, "no figures yet") {
		t.Error("a source without series: no plots and a note expected")
	}
}
