package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"libx.net/eventstream/e2e/promcheck"
)

const (
	dashboardsDir = "../grafana/dashboards"
	rulesDir      = "../grafana/prometheus/rules"
	datasourceUID = "prometheus"
)

func loadDashboards(t *testing.T) map[string]*dashboard.Dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("want the overview and the topic dashboards in %s, found %v", dashboardsDir, files)
	}
	out := map[string]*dashboard.Dashboard{}
	for _, f := range files {
		d, err := promcheck.LoadDashboard(f)
		if err != nil {
			t.Fatalf("decoding with grafana-foundation-sdk types: %v", err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestDashboardsStructure(t *testing.T) {
	uids := map[string]string{}
	for file, d := range loadDashboards(t) {
		t.Run(file, func(t *testing.T) {
			uid := str(d.Uid)
			if uid == "" || str(d.Title) == "" {
				t.Fatalf("uid %q, title %q: both are required", uid, str(d.Title))
			}
			if want := strings.TrimSuffix(file, ".json"); uid != want {
				t.Errorf("uid %q, want %q (the file name, so links /d/<uid> are predictable)", uid, want)
			}
			if other, dup := uids[uid]; dup {
				t.Errorf("uid %q also used by %s", uid, other)
			}
			uids[uid] = file
			if d.SchemaVersion == 0 {
				t.Error("schemaVersion missing")
			}

			vars := map[string]dashboard.VariableModel{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v
			}
			for _, name := range []string{"service", "topic", "group"} {
				v, ok := vars[name]
				if !ok {
					t.Errorf("template variable %q missing", name)
					continue
				}
				if v.Type != "query" {
					t.Errorf("variable %q has type %q, want query", name, v.Type)
				}
				if v.Datasource == nil || str(v.Datasource.Uid) != datasourceUID {
					t.Errorf("variable %q: datasource uid must be %q", name, datasourceUID)
				}
			}

			ids := map[uint32]string{}
			panels := promcheck.Panels(d)
			if len(panels) == 0 {
				t.Fatal("no panels")
			}
			for _, p := range panels {
				name := str(p.Title)
				if name == "" {
					t.Errorf("panel %v has no title", p.Id)
				}
				if p.Id == nil {
					t.Errorf("panel %q has no id", name)
				} else if other, dup := ids[*p.Id]; dup {
					t.Errorf("panel %q: id %d also used by %q", name, *p.Id, other)
				} else {
					ids[*p.Id] = name
				}
				if p.GridPos == nil {
					t.Errorf("panel %q has no gridPos", name)
				}
				if p.Datasource == nil || str(p.Datasource.Uid) != datasourceUID {
					t.Errorf("panel %q: datasource uid must be %q", name, datasourceUID)
				}
				targets, err := promcheck.PromTargets(p)
				if err != nil {
					t.Errorf("panel %q: %v", name, err)
					continue
				}
				if len(targets) == 0 {
					t.Errorf("panel %q has no target", name)
				}
				refs := map[string]bool{}
				for i, q := range targets {
					if strings.TrimSpace(q.Expr) == "" {
						t.Errorf("panel %q target %d: empty expr", name, i)
					}
					if q.Datasource == nil || str(q.Datasource.Uid) != datasourceUID {
						t.Errorf("panel %q target %d: datasource uid must be %q", name, i, datasourceUID)
					}
					ref := str(q.RefId)
					if ref == "" || refs[ref] {
						t.Errorf("panel %q target %d: refId %q missing or repeated", name, i, ref)
					}
					refs[ref] = true
					// Latency panels: exemplars on, so a point links to its trace.
					if strings.Contains(q.Expr, "histogram_quantile") && (q.Exemplar == nil || !*q.Exemplar) {
						t.Errorf("panel %q target %s: a latency query must set exemplar: true", name, ref)
					}
				}
			}
			checkLayout(t, d)
		})
	}
}

// checkLayout: panels fit the 24-column grid and do not overlap.
func checkLayout(t *testing.T, d *dashboard.Dashboard) {
	type box struct {
		name       string
		x, y, w, h uint32
	}
	var boxes []box
	for _, p := range d.Panels {
		switch {
		case p.Panel != nil && p.Panel.GridPos != nil:
			g := p.Panel.GridPos
			boxes = append(boxes, box{str(p.Panel.Title), g.X, g.Y, g.W, g.H})
		case p.RowPanel != nil:
			g := p.RowPanel.GridPos
			if g != nil {
				boxes = append(boxes, box{"row " + str(p.RowPanel.Title), g.X, g.Y, 24, 1})
			}
		}
	}
	for i, a := range boxes {
		if a.x+a.w > 24 || a.w == 0 || a.h == 0 {
			t.Errorf("panel %q: gridPos x=%d w=%d h=%d does not fit the 24-column grid", a.name, a.x, a.w, a.h)
		}
		for _, b := range boxes[i+1:] {
			if a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h {
				t.Errorf("panels %q and %q overlap", a.name, b.name)
			}
		}
	}
}

// The overview links to the per-topic drill-down, and back.
func TestDashboardLinks(t *testing.T) {
	ds := loadDashboards(t)
	for file, target := range map[string]string{
		"eventstream-overview.json": "/d/eventstream-topic",
		"eventstream-topic.json":    "/d/eventstream-overview",
	} {
		d, ok := ds[file]
		if !ok {
			t.Errorf("%s missing", file)
			continue
		}
		found := false
		for _, l := range d.Links {
			if strings.HasPrefix(str(l.Url), target) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no dashboard link to %s", file, target)
		}
	}
	// The drill-down's topic is one topic.
	if d := ds["eventstream-topic.json"]; d != nil {
		for _, v := range d.Templating.List {
			if v.Name == "topic" && v.Multi != nil && *v.Multi {
				t.Error("eventstream-topic.json: variable topic must be single-valued")
			}
		}
	}
}

// Every query parses and uses only the metric and label names the library
// exports (promcheck.KnownMetrics, promcheck.KnownLabels).
func TestDashboardQueriesUseKnownNames(t *testing.T) {
	qs, err := promcheck.DashboardQueries(dashboardsDir)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, q := range qs {
		for _, p := range promcheck.Lint(q) {
			t.Error(p)
		}
		if a, err := promcheck.Analyze(q.Expr); err == nil {
			for _, m := range a.Metrics {
				used[m] = true
			}
		}
	}
	// Every metric the library exports is on some dashboard.
	for m := range promcheck.KnownMetrics {
		if strings.HasSuffix(m, "_sum") || m == "target_info" {
			continue // sums are not needed for quantiles; target_info is resource metadata
		}
		if strings.HasSuffix(m, "_count") && used[strings.TrimSuffix(m, "_count")+"_bucket"] {
			continue
		}
		if !used[m] {
			t.Errorf("metric %s (%s) appears on no dashboard", m, promcheck.KnownMetrics[m])
		}
	}
}

func TestSubstitute(t *testing.T) {
	for in, want := range map[string]string{
		`rate(x{service=~"$service", t=~"${topic}"}[$__rate_interval])`: `rate(x{service=~".*", t=~".*"}[1m])`,
		`increase(x{g=~"[[group]]"}[$__range])`:                         `increase(x{g=~".*"}[5m])`,
		`sum(x[$__interval])`:                                           `sum(x[15s])`,
	} {
		if got := promcheck.Substitute(in); got != want {
			t.Errorf("Substitute(%s) = %s, want %s", in, got, want)
		}
	}
	got, err := promcheck.LabelValuesToPromQL(`label_values(up{job="eventstream"}, service)`)
	if err != nil || got != `count by (service) (up{job="eventstream"})` {
		t.Errorf("LabelValuesToPromQL = %q, %v", got, err)
	}
}

func ExampleAnalyze() {
	a, _ := promcheck.Analyze(`sum by (messaging_destination_name) (rate(messaging_client_sent_messages_total{service=~".*"}[1m]))`)
	fmt.Println(a.Metrics, a.Labels)
	// Output: [messaging_client_sent_messages_total] [messaging_destination_name service]
}

// The strict decoding rejects what Grafana's schema does not allow, so the
// structural check is not vacuous.
func TestLoadDashboardIsStrict(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dashboardsDir, "eventstream-overview.json"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), `"gridPos": {`, `"gridPoz": 1, "gridPos": {`, 1)
	f := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := promcheck.LoadDashboard(f); err == nil || !strings.Contains(err.Error(), "gridPoz") {
		t.Errorf("a panel with an unknown field decoded without the expected error: %v", err)
	}
}
