package e2e

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream/e2e/promcheck"
)

// TestPanelsAgainstPrometheus runs every dashboard panel query, every
// template-variable query and every rule's expression against a real
// Prometheus that scrapes running EventStream processes and evaluates the
// rules. Every query must parse and evaluate; every panel, variable and
// recording rule must return data, and so must what each alert measures
// (promcheck.Measured: its expression without the thresholds), except where
// promcheck.AllowedNoData says why not (Kafka-only metrics without a
// Kafka-mode process, memory-only metrics without a memory-mode process, an
// alert's own expression when it is not firing).
//
// EVENTSTREAM_PROMETHEUS_URL is the Prometheus base URL (.ci/run sets it
// after starting Prometheus and the example services);
// EVENTSTREAM_PROMETHEUS_WAIT (a Go duration, default 60s) is how long to wait
// for series to appear.
func TestPanelsAgainstPrometheus(t *testing.T) {
	base := os.Getenv("EVENTSTREAM_PROMETHEUS_URL")
	if base == "" {
		t.Skip("EVENTSTREAM_PROMETHEUS_URL not set: this test needs a Prometheus scraping running EventStream services; .ci/run starts them and sets it")
	}
	wait := 60 * time.Second
	if s := os.Getenv("EVENTSTREAM_PROMETHEUS_WAIT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("EVENTSTREAM_PROMETHEUS_WAIT: %v", err)
		}
		wait = d
	}
	panels, err := promcheck.DashboardQueries(dashboardsDir)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := promcheck.AlertQueries(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	qs := append(panels, rules...)
	// An alert that is not firing has no data; what it measures must.
	for _, r := range rules {
		if r.Kind != promcheck.KindAlert {
			continue
		}
		m, err := promcheck.Measured(r.Expr)
		if err != nil {
			t.Fatalf("%s: %v", r.ID(), err)
		}
		qs = append(qs, promcheck.Query{Kind: promcheck.KindMeasure, Source: r.Source, Name: r.Name, Raw: r.Expr, Expr: m})
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait+2*time.Minute)
	defer cancel()
	rep, err := promcheck.CheckAll(ctx, base, qs, wait, 5*time.Second)
	if err != nil {
		t.Fatalf("querying %s: %v", base, err)
	}
	var modes []string
	for m := range rep.Modes {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	t.Logf("%d queries against %s; messaging.system values with data: %s", len(qs), base, strings.Join(modes, ", "))
	if len(modes) == 0 {
		t.Errorf("no EventStream metrics in Prometheus at all: are the services running and scraped (job eventstream)?")
	}
	for _, r := range rep.Failed() {
		if r.ParseError != "" {
			t.Errorf("%s does not parse: %s\n  %s", r.Query.ID(), r.ParseError, r.Query.Expr)
		} else {
			t.Errorf("%s does not evaluate: %s\n  %s", r.Query.ID(), r.Error, r.Query.Expr)
		}
	}
	for _, r := range rep.MissingData() {
		t.Errorf("%s returns no data after %s\n  %s", r.Query.ID(), wait, r.Query.Expr)
	}
	for _, r := range rep.Results {
		if r.NoData() && r.AllowedNoData != "" {
			t.Logf("no data, allowed (%s): %s", r.AllowedNoData, r.Query.ID())
		}
	}
}
