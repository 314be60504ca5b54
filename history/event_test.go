package history_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream/history"
)

// archiveSource is a fakeSource that holds entries since a horizon.
type archiveSource struct {
	fakeSource
	from time.Time
}

func (a archiveSource) All() ([]history.Entry, time.Time) {
	return append([]history.Entry(nil), a.entries...), a.from
}

// chainEntries: order o1 → payment p1 (billing: failed, then ok) → receipt
// r1 (mailer: ok); p1 also failed for group audit, which dead-lettered it
// as d1. Newest first, as a history lists them.
func chainEntries(t0 time.Time) []history.Entry {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := "4bf92f3577b34da6a3ce929d0e0e4736"
	es := []history.Entry{
		{EventID: "o1", Topic: "orders", Operation: "send", Start: at(0), Status: "ok", CorrelationID: "o1", TraceID: tr},
		{EventID: "o1", Topic: "orders", Group: "shop", Operation: "process", Attempt: 1, Start: at(1), Status: "ok", CorrelationID: "o1", TraceID: tr},
		{EventID: "p1", Topic: "payments", Operation: "send", Start: at(2), Status: "ok", CausationID: "o1", CorrelationID: "o1", TraceID: "aaaa"},
		{EventID: "p1", Topic: "payments", Group: "billing", Operation: "process", Attempt: 1, Start: at(3), Status: "error", Error: "declined", CausationID: "o1", CorrelationID: "o1"},
		{EventID: "p1", Topic: "payments", Group: "audit", Operation: "process", Attempt: 1, Start: at(3), Status: "error", Error: "<down>", CausationID: "o1", CorrelationID: "o1"},
		{EventID: "p1", Topic: "payments", Group: "billing", Operation: "process", Attempt: 2, Start: at(5), Status: "ok", CausationID: "o1", CorrelationID: "o1"},
		{EventID: "d1", Topic: "payments.dlq", Operation: "send", Start: at(6), Status: "ok", CausationID: "p1", CorrelationID: "o1", DeadLetter: true},
		// The dead letter's own handling is not marked: its send is.
		{EventID: "d1", Topic: "payments.dlq", Group: "ops", Operation: "process", Attempt: 1, Start: at(7), Status: "ok", CausationID: "p1", CorrelationID: "o1"},
		{EventID: "r1", Topic: "receipts", Operation: "send", Start: at(6), Status: "ok", CausationID: "p1", CorrelationID: "o1"},
		{EventID: "r1", Topic: "receipts", Group: "mailer", Operation: "process", Attempt: 1, Start: at(7), Status: "ok", CausationID: "p1", CorrelationID: "o1"},
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

func TestEventViewJSON(t *testing.T) {
	src := archiveSource{fakeSource: testSource()}
	src.entries = chainEntries(time.Now())
	h := history.Handler(src)

	rr := get(t, h, "/events/p1", nil)
	if rr.Code != http.StatusOK || !strings.HasPrefix(rr.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /events/p1: %d %s", rr.Code, rr.Header().Get("Content-Type"))
	}
	var v history.EventView
	if err := json.Unmarshal(rr.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Found || v.Topic != "payments" || v.CausationID != "o1" || v.CorrelationID != "o1" || v.TraceID != "aaaa" || len(v.Sends) != 1 {
		t.Errorf("view header: %+v", v)
	}
	if len(v.Groups) != 2 || v.Groups[1].Group != "billing" || len(v.Groups[1].Attempts) != 2 ||
		v.Groups[1].Attempts[0].Error != "declined" || v.Groups[1].Status != "ok" || v.Groups[0].Status != "error" {
		t.Errorf("groups: %+v", v.Groups)
	}
	if len(v.DeadLetters) != 1 || v.DeadLetters[0].EventID != "d1" {
		t.Errorf("dead letters: %+v", v.DeadLetters)
	}
	if len(v.Caused) != 1 || v.Caused[0].ID != "r1" || v.Caused[0].Status != "ok" || len(v.Caused[0].Groups) != 1 {
		t.Errorf("caused (dead letter excluded): %+v", v.Caused)
	}
	if len(v.Notes) != 0 {
		t.Errorf("notes with nothing dropped: %q", v.Notes)
	}

	// From the chain's first event: the whole tree, the payment's outcome
	// summed up as dead-lettered.
	rr = get(t, h, "/events/o1", nil)
	v = history.EventView{}
	_ = json.Unmarshal(rr.Body.Bytes(), &v)
	if len(v.Caused) != 1 || v.Caused[0].ID != "p1" || v.Caused[0].Status != history.StatusDeadLettered ||
		len(v.Caused[0].Caused) != 1 || v.Caused[0].Caused[0].ID != "r1" {
		t.Errorf("tree from o1: %+v", v.Caused)
	}

	// Unknown: 404, said.
	rr = get(t, h, "/events/nope", nil)
	v = history.EventView{}
	_ = json.Unmarshal(rr.Body.Bytes(), &v)
	if rr.Code != http.StatusNotFound || v.Found || len(v.Notes) == 0 {
		t.Errorf("unknown id: %d %+v", rr.Code, v)
	}
}

// What the history dropped is said, not guessed.
func TestEventViewSaysWhatIsGone(t *testing.T) {
	t0 := time.Now()
	src := archiveSource{fakeSource: testSource(), from: t0.Add(2500 * time.Microsecond)}
	// The history lost the order and the payment's send.
	for _, e := range chainEntries(t0) {
		if e.EventID == "o1" || e.Operation == "send" && e.EventID == "p1" {
			continue
		}
		src.entries = append(src.entries, e)
	}
	rr := get(t, history.Handler(src), "/events/p1", nil)
	var v history.EventView
	_ = json.Unmarshal(rr.Body.Bytes(), &v)
	notes := strings.Join(v.Notes, "\n")
	for _, want := range []string{"every operation that ended after", "No send of this event is held", "Its cause, o1, is not held"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	if v.CompleteFrom.IsZero() {
		t.Error("complete_from not set")
	}

	// A source that cannot list its history says so.
	plain := testSource()
	plain.entries = chainEntries(t0)
	rr = get(t, history.Handler(plain), "/events/p1", nil)
	v = history.EventView{}
	_ = json.Unmarshal(rr.Body.Bytes(), &v)
	if !strings.Contains(strings.Join(v.Notes, "\n"), "cannot say what it dropped") || len(v.Caused) != 1 {
		t.Errorf("plain source: notes %q caused %+v", v.Notes, v.Caused)
	}
}

// The HTML view: lineage links, attempts, the dead letter, the tree, trace
// links; the main page links each event id to it.
func TestEventViewHTML(t *testing.T) {
	src := archiveSource{fakeSource: testSource()}
	src.entries = chainEntries(time.Now())
	h := history.Handler(src, history.WithTraceURL("http://jaeger.example/trace/{id}"))
	rr := get(t, h, "/?event=o1", nil)
	body := rr.Body.String()
	if rr.Code != http.StatusOK || !strings.HasPrefix(rr.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /?event=o1: %d %s", rr.Code, rr.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		`id="caused"`, `href="?event=p1"`, `href="?event=r1"`, "dead-lettered",
		`href="http://jaeger.example/trace/4bf92f3577b34da6a3ce929d0e0e4736"`,
		`href="?event=o1&amp;format=json"`, "its own id",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("event page lacks %s", want)
		}
	}
	rr = get(t, h, "/?event=p1", nil)
	body = rr.Body.String()
	for _, want := range []string{`id="attempts"`, "declined", "&lt;down&gt;", `id="deadletters"`, `href="?event=d1"`, `href="?event=o1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("payment page lacks %s", want)
		}
	}
	if rr := get(t, h, "/?event=p1&format=json", nil); !strings.HasPrefix(rr.Header().Get("Content-Type"), "application/json") {
		t.Errorf("?format=json: %s", rr.Header().Get("Content-Type"))
	}
	if rr := get(t, h, "/?event=nope", nil); rr.Code != http.StatusNotFound || !strings.Contains(rr.Body.String(), "holds no operation") {
		t.Errorf("unknown id page: %d", rr.Code)
	}
	if main := get(t, h, "/", nil).Body.String(); !strings.Contains(main, `href="?event=o1"`) {
		t.Error("the main page does not link event ids to their view")
	}
}
