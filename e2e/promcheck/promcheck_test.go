package promcheck

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeProm answers /api/v1/query like Prometheus: bad_data for an expression
// containing "((", an empty vector for one containing "nothing", an execution
// error for "boom", one series otherwise.
func fakeProm(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.FormValue("query")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.Contains(q, "(("):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:3: parse error: unexpected end of input"}`)
		case strings.Contains(q, "boom"):
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, `{"status":"error","errorType":"execution","error":"boom"}`)
		case strings.Contains(q, "nothing"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case strings.Contains(q, "count by (messaging_system)"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"messaging_system":"memory"},"value":[1,"1"]}]}}`)
		default:
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}`)
		}
	}))
}

func TestCheckAllClassifies(t *testing.T) {
	srv := fakeProm(t)
	defer srv.Close()
	qs := []Query{
		{Kind: KindPanel, Name: "ok", Expr: `sum(eventstream_in_flight)`},
		{Kind: KindPanel, Name: "bad", Expr: `sum((`},
		{Kind: KindPanel, Name: "err", Expr: `boom`},
		{Kind: KindPanel, Name: "empty", Expr: `nothing`},
		{Kind: KindPanel, Name: "lag", Expr: `sum(eventstream_consumer_lag) and nothing`},
		{Kind: KindAlert, Name: "alert", Expr: `nothing > 0`},
	}
	rep, err := CheckAll(context.Background(), srv.URL, qs, 0, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		switch {
		case r.ParseError != "":
			got[r.Query.Name] = "parse"
		case r.Error != "":
			got[r.Query.Name] = "error"
		case r.NoData() && r.AllowedNoData != "":
			got[r.Query.Name] = "allowed"
		case r.NoData():
			got[r.Query.Name] = "nodata"
		default:
			got[r.Query.Name] = "data"
		}
	}
	want := map[string]string{"ok": "data", "bad": "parse", "err": "error", "empty": "nodata", "lag": "allowed", "alert": "allowed"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %s, want %s", k, got[k], v)
		}
	}
	if len(rep.Failed()) != 2 || len(rep.MissingData()) != 1 {
		t.Errorf("Failed %d (want 2), MissingData %d (want 1)", len(rep.Failed()), len(rep.MissingData()))
	}
}

func TestAllowedNoData(t *testing.T) {
	memory := map[string]bool{"memory": true}
	kafka := map[string]bool{"kafka": true}
	for _, c := range []struct {
		expr  string
		modes map[string]bool
		ok    bool
	}{
		{`sum(eventstream_consumer_lag)`, memory, true},
		{`sum(eventstream_consumer_lag)`, kafka, false},
		{`sum(rate(messaging_kafka_fetch_records_count_total[1m]))`, memory, true},
		{`sum(eventstream_queue_depth)`, kafka, true},
		{`sum(eventstream_queue_depth)`, memory, false},
		{`sum(rate(eventstream_retries_total[1m]))`, memory, false},
	} {
		if _, ok := AllowedNoData(Query{Kind: KindPanel, Expr: c.expr}, c.modes); ok != c.ok {
			t.Errorf("AllowedNoData(%s, %v) = %v, want %v", c.expr, c.modes, ok, c.ok)
		}
	}
}

func TestLintFlagsUnknownNames(t *testing.T) {
	probs := Lint(Query{Kind: KindPanel, Name: "x", Expr: `sum by (messaging_destination) (rate(messaging_client_sent_messages[1m]))`})
	if len(probs) != 2 {
		t.Errorf("want an unknown metric and an unknown label, got %v", probs)
	}
	if p := Lint(Query{Kind: KindPanel, Name: "y", Expr: `sum(rate({__name__=~"nope_.*"}[1m]))`}); len(p) != 1 {
		t.Errorf("a __name__ regex matching no known metric: got %v", p)
	}
}

func ExampleMeasured() {
	m, _ := Measured(`(sum by (g) (rate(x[5m])) > 0.1 and on (g) y > 3) or z < bool 2`)
	fmt.Println(m)
	// Output: (sum by (g) (rate(x[5m]))) or z < bool 2
}
