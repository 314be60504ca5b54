package history_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream/history"
)

// dlSource is a Source with dead letters; it records the filters it is
// asked for.
type dlSource struct {
	fakeSource
	dls      []history.DeadLetter
	asked    history.DeadLetterFilter
	replayed history.DeadLetterFilter
	toGroup  string
}

func (s *dlSource) DeadLetters(_ context.Context, f history.DeadLetterFilter, n int) ([]history.DeadLetter, error) {
	s.asked = f
	var out []history.DeadLetter
	for _, d := range s.dls {
		if f.Match(d) && len(out) < n {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *dlSource) ReplayDeadLetters(_ context.Context, f history.DeadLetterFilter, toGroup string) (history.ReplayResult, error) {
	s.replayed, s.toGroup = f, toGroup
	return history.ReplayResult{Replayed: 2, Skipped: 1}, nil
}

func TestDeadLetterFilterMatch(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	d := history.DeadLetter{ID: "a", Topic: "orders", Group: "billing", ErrorType: "*x.E", Time: t0}
	for _, tc := range []struct {
		f    history.DeadLetterFilter
		want bool
	}{
		{history.DeadLetterFilter{}, true},
		{history.DeadLetterFilter{Topic: "orders", Group: "billing", ErrorType: "*x.E"}, true},
		{history.DeadLetterFilter{Topic: "payments"}, false},
		{history.DeadLetterFilter{Group: "audit"}, false},
		{history.DeadLetterFilter{ErrorType: "*x.F"}, false},
		{history.DeadLetterFilter{Since: t0}, true},  // inclusive
		{history.DeadLetterFilter{Until: t0}, false}, // exclusive
		{history.DeadLetterFilter{Since: t0.Add(-time.Hour), Until: t0.Add(time.Second)}, true},
		{history.DeadLetterFilter{IDs: []string{"b", "a"}}, true},
		{history.DeadLetterFilter{IDs: []string{"b"}}, false},
	} {
		if got := tc.f.Match(d); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestDeadLetterViewFiltersAndReplayOption(t *testing.T) {
	src := &dlSource{fakeSource: testSource(), dls: []history.DeadLetter{
		{ID: "ev-9", Topic: "orders", Group: "billing", ErrorType: "*x.E", Reason: "<declined>", Attempts: 4, Time: time.Now(),
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Partition: -1, Offset: -1},
	}}
	h := history.Handler(src, history.WithTraceURL("http://jaeger:16686/trace/{id}"))
	rec := get(t, h, "/deadletters?topic=orders&group=billing&error_type=*x.E&since=2026-01-02T15:04:05Z&id=ev-9,ev-8", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	want := history.DeadLetterFilter{Topic: "orders", Group: "billing", ErrorType: "*x.E",
		Since: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), IDs: []string{"ev-9", "ev-8"}}
	if src.asked.Topic != want.Topic || src.asked.Group != want.Group || src.asked.ErrorType != want.ErrorType ||
		!src.asked.Since.Equal(want.Since) || strings.Join(src.asked.IDs, ",") != "ev-9,ev-8" {
		t.Fatalf("filter %+v, want %+v", src.asked, want)
	}
	body := rec.Body.String()
	for _, s := range []string{"&lt;declined&gt;", `href="http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"`, "Replay from this page is off"} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if rec := get(t, h, "/deadletters?since=yesterday", nil); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad since: %d", rec.Code)
	}
	var dls []history.DeadLetter
	rec = get(t, h, "/deadletters", map[string]string{"Accept": "application/json"})
	if err := json.Unmarshal(rec.Body.Bytes(), &dls); err != nil || len(dls) != 1 {
		t.Fatalf("JSON: %v %s", err, rec.Body)
	}

	post := func(h http.Handler, form url.Values) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/deadletters/replay", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(h, url.Values{"topic": {"orders"}}); rec.Code != http.StatusForbidden || src.replayed.Topic != "" {
		t.Fatalf("replay while off: %d", rec.Code)
	}
	on := history.Handler(src, history.WithDeadLetterReplay())
	if rec := post(on, url.Values{}); rec.Code != http.StatusBadRequest {
		t.Fatalf("replay without a topic: %d", rec.Code)
	}
	rec = post(on, url.Values{"topic": {"orders"}, "group": {"billing"}, "to_group": {"billing"}, "error_type": {"*x.E"}, "page": {"1"}})
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || src.replayed.ErrorType != "*x.E" || src.toGroup != "billing" ||
		!strings.HasPrefix(loc, "../deadletters?") || !strings.Contains(loc, "replayed+2%2C+skipped+1%2C+failed+0") {
		t.Fatalf("replay from the page: %d %q %+v", rec.Code, loc, src.replayed)
	}
	if rec := get(t, on, "/deadletters?topic=orders&group=billing&replayed=replayed+2", nil); !strings.Contains(rec.Body.String(), `id="result"`) ||
		!strings.Contains(rec.Body.String(), `action="deadletters/replay"`) || !strings.Contains(rec.Body.String(), `name="to_group" value="billing"`) {
		t.Fatalf("page after replay: %s", rec.Body)
	}
	if rec := get(t, history.Handler(testSource()), "/deadletters", nil); rec.Code != http.StatusNotFound {
		t.Fatalf("a source without dead letters: %d", rec.Code)
	}
}
