package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"libx.net/eventstream/e2e/promcheck"
)

// Every alert has an expression over known names, a `for`, a severity, a
// summary and a runbook paragraph; and the alerts the README lists exist.
func TestAlertRules(t *testing.T) {
	files, err := promcheck.LoadRules(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for file, rules := range files {
		for _, r := range rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			q := promcheck.Query{Kind: promcheck.KindAlert, Source: file, Name: r.Alert, Raw: r.Expr, Expr: r.Expr}
			for _, p := range promcheck.Lint(q) {
				t.Error(p)
			}
			if r.For == "" {
				t.Errorf("%s: no `for`", r.Alert)
			}
			switch r.Labels["severity"] {
			case "info", "warning", "critical":
			default:
				t.Errorf("%s: labels.severity %q, want info, warning or critical", r.Alert, r.Labels["severity"])
			}
			if strings.TrimSpace(r.Annotations["summary"]) == "" {
				t.Errorf("%s: no annotations.summary", r.Alert)
			}
			if rb := r.Annotations["runbook"]; len(strings.Fields(rb)) < 40 {
				t.Errorf("%s: annotations.runbook must be a paragraph saying what it means and what to do (%d words)", r.Alert, len(strings.Fields(rb)))
			}
		}
	}
	for _, a := range []string{
		"EventStreamDeadLettersGrowing", "EventStreamHighErrorRatio", "EventStreamConsumerLagGrowing",
		"EventStreamWorkerPoolSaturated", "EventStreamGroupStoppedConsuming", "EventStreamTimeLagHigh",
		"EventStreamSLOHandledBudgetBurn", "EventStreamSLOHandledBudgetBurnSlow",
		"EventStreamSLOLatencyBudgetBurn", "EventStreamSLOLatencyBudgetBurnSlow", "EventStreamDeadLetterBlocked",
	} {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// promtool check config / check rules / test rules, where promtool is
// installed (Debian package prometheus; scripts/prometheus.sh install). Set
// EVENTSTREAM_REQUIRE_PROMTOOL=1 to fail instead of skipping without it.
func TestPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("EVENTSTREAM_REQUIRE_PROMTOOL") != "" {
			t.Fatal("promtool not found and EVENTSTREAM_REQUIRE_PROMTOOL is set")
		}
		t.Skip("promtool not installed (apt-get install prometheus, or scripts/prometheus.sh install)")
	}
	runs := [][]string{{"check", "config", "../grafana/prometheus/prometheus.yml"}}
	// Every rule file Prometheus loads (prometheus.yml: rules/*.rules.yml),
	// and every unit test beside them.
	rules, _ := filepath.Glob(rulesDir + "/*.rules.yml")
	tests, _ := filepath.Glob(rulesDir + "/*.rules.test.yml")
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatalf("no rule files or rule tests in %s", rulesDir)
	}
	for _, f := range rules {
		runs = append(runs, []string{"check", "rules", f})
	}
	for _, f := range tests {
		runs = append(runs, []string{"test", "rules", f})
	}
	for _, args := range runs {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The names the recording rules write are the ones queries may read
// (promcheck.RecordedMetrics), and each recording rule reads known names.
func TestRecordedMetricsMatchRules(t *testing.T) {
	files, err := promcheck.LoadRules(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for file, rules := range files {
		for _, r := range rules {
			if r.Record == "" {
				continue
			}
			recorded[r.Record] = true
			if _, ok := promcheck.RecordedMetrics[r.Record]; !ok {
				t.Errorf("%s records %s, missing from promcheck.RecordedMetrics", file, r.Record)
			}
			q := promcheck.Query{Kind: promcheck.KindRecord, Source: file, Name: r.Record, Raw: r.Expr, Expr: r.Expr}
			for _, p := range promcheck.Lint(q) {
				if strings.HasSuffix(p, "references no metric") && strings.HasPrefix(r.Expr, "vector(") {
					continue // a parameter: a constant
				}
				t.Error(p)
			}
		}
	}
	for name := range promcheck.RecordedMetrics {
		if !recorded[name] {
			t.Errorf("promcheck.RecordedMetrics lists %s, which no rule records", name)
		}
	}
}
