// Package promcheck extracts every PromQL query from the EventStream Grafana
// dashboards and Prometheus alert rules, and checks them offline (they parse,
// they use only known metric and label names) and against a running
// Prometheus (they evaluate, and the panels return data).
package promcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// Kind tells where a query comes from.
type Kind string

const (
	KindPanel    Kind = "panel"
	KindVariable Kind = "variable"
	KindAlert    Kind = "alert"
	KindRecord   Kind = "record"
	// KindMeasure is what an alert measures (see Measured): it has data
	// whether the alert fires or not.
	KindMeasure Kind = "alert measure"
)

// Query is one PromQL expression found in a dashboard or a rule file.
type Query struct {
	Kind   Kind
	Source string // file name
	Name   string // panel title / variable name / alert name
	RefID  string // target refId (panels)
	Raw    string // as written, with Grafana variables
	Expr   string // runnable: variables substituted
	// Exemplar is the target's exemplar flag (panels).
	Exemplar bool
}

// ID names the query in reports.
func (q Query) ID() string {
	s := fmt.Sprintf("%s %s %q", q.Source, q.Kind, q.Name)
	if q.RefID != "" {
		s += " " + q.RefID
	}
	return s
}

var registerOnce = func() func() {
	done := false
	return func() {
		if !done {
			plugins.RegisterDefaultPlugins()
			done = true
		}
	}
}()

// LoadDashboard decodes a dashboard JSON file with the Go types of
// grafana-foundation-sdk, strictly: unknown fields and wrongly typed values
// are errors.
func LoadDashboard(path string) (*dashboard.Dashboard, error) {
	registerOnce()
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Validate strictly first. UnmarshalJSONStrict (v0.0.22) returns its
	// error list as an error even when the list is empty (a typed nil), so
	// only a non-empty list is an error; for the same reason it drops the
	// panels it decoded without error, so the data is decoded again with the
	// lenient decoder below.
	var strict dashboard.Dashboard
	if err := strict.UnmarshalJSONStrict(raw); err != nil {
		var be cog.BuildErrors
		if !errors.As(err, &be) || len(be) > 0 {
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
	}
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return &d, nil
}

// Panels returns every panel of d that is not a row, including the panels
// nested in collapsed rows.
func Panels(d *dashboard.Dashboard) []*dashboard.Panel {
	var out []*dashboard.Panel
	for _, p := range d.Panels {
		if p.Panel != nil {
			out = append(out, p.Panel)
		}
		if p.RowPanel != nil {
			for i := range p.RowPanel.Panels {
				out = append(out, &p.RowPanel.Panels[i])
			}
		}
	}
	return out
}

// PromTargets returns the Prometheus targets of p; a target of another kind is
// an error.
func PromTargets(p *dashboard.Panel) ([]*prometheus.Dataquery, error) {
	var out []*prometheus.Dataquery
	for i, t := range p.Targets {
		switch q := t.(type) {
		case *prometheus.Dataquery:
			out = append(out, q)
		case prometheus.Dataquery:
			out = append(out, &q)
		default:
			return nil, fmt.Errorf("target %d is %T, not a Prometheus query", i, t)
		}
	}
	return out, nil
}

func title(p *dashboard.Panel) string {
	if p.Title == nil {
		return ""
	}
	return *p.Title
}

// DashboardQueries returns the panel and variable queries of every *.json
// dashboard in dir.
func DashboardQueries(dir string) ([]Query, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboard in %s", dir)
	}
	var out []Query
	for _, f := range files {
		d, err := LoadDashboard(f)
		if err != nil {
			return nil, err
		}
		src := filepath.Base(f)
		for _, p := range Panels(d) {
			ts, err := PromTargets(p)
			if err != nil {
				return nil, fmt.Errorf("%s panel %q: %w", src, title(p), err)
			}
			for _, t := range ts {
				ref := ""
				if t.RefId != nil {
					ref = *t.RefId
				}
				out = append(out, Query{Kind: KindPanel, Source: src, Name: title(p), RefID: ref,
					Raw: t.Expr, Expr: Substitute(t.Expr), Exemplar: t.Exemplar != nil && *t.Exemplar})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q, ok := variableQuery(v.Query)
			if !ok {
				return nil, fmt.Errorf("%s variable %s: no query", src, v.Name)
			}
			expr, err := LabelValuesToPromQL(q)
			if err != nil {
				return nil, fmt.Errorf("%s variable %s: %w", src, v.Name, err)
			}
			out = append(out, Query{Kind: KindVariable, Source: src, Name: v.Name, Raw: q, Expr: Substitute(expr)})
		}
	}
	return out, nil
}

// variableQuery reads a query variable's query, a string or an object with a
// "query" field (the Prometheus variable editor's form).
func variableQuery(q any) (string, bool) {
	if q == nil {
		return "", false
	}
	if s, ok := q.(string); ok {
		return s, s != ""
	}
	if sp, ok := q.(*string); ok && sp != nil {
		return *sp, *sp != ""
	}
	raw, err := json.Marshal(q)
	if err != nil {
		return "", false
	}
	var obj struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Query != "" {
		return obj.Query, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, true
	}
	return "", false
}

var labelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// LabelValuesToPromQL turns Grafana's `label_values(selector, label)` into
// the equivalent PromQL `count by (label) (selector)`.
func LabelValuesToPromQL(q string) (string, error) {
	m := labelValuesRE.FindStringSubmatch(q)
	if m == nil {
		return "", fmt.Errorf("not a label_values(selector, label) query: %q", q)
	}
	return fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), nil
}

// Substitutions replace Grafana's built-in interval variables by fixed
// durations. Every other $variable, ${variable} or [[variable]] becomes `.*`:
// the dashboards use variables only inside regex matchers (=~), where that
// selects all values.
var Substitutions = map[string]string{
	"$__rate_interval":   "1m",
	"${__rate_interval}": "1m",
	"$__interval":        "15s",
	"${__interval}":      "15s",
	"$__range":           "5m",
	"${__range}":         "5m",
}

var varRE = regexp.MustCompile(`\$\{[a-zA-Z_][a-zA-Z0-9_]*(:[a-z]+)?\}|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[a-zA-Z_][a-zA-Z0-9_]*\]\]`)

// Substitute makes a dashboard expression runnable by Prometheus.
func Substitute(expr string) string {
	keys := make([]string, 0, len(Substitutions))
	for k := range Substitutions {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		expr = strings.ReplaceAll(expr, k, Substitutions[k])
	}
	return varRE.ReplaceAllString(expr, ".*")
}

// ruleFile is the part of the Prometheus rule file format read here.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is an alerting or recording rule.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// LoadRules reads the rules of every *.rules.yml file in dir.
func LoadRules(dir string) (map[string][]Rule, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.rules.yml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.rules.yml in %s", dir)
	}
	out := map[string][]Rule{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var rf ruleFile
		if err := yaml.Unmarshal(raw, &rf); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		for _, g := range rf.Groups {
			out[filepath.Base(f)] = append(out[filepath.Base(f)], g.Rules...)
		}
	}
	return out, nil
}

// AlertQueries returns the expression of every rule in the *.rules.yml files
// of dir: KindAlert for alerting rules, KindRecord for recording rules.
func AlertQueries(dir string) ([]Query, error) {
	files, err := LoadRules(dir)
	if err != nil {
		return nil, err
	}
	var out []Query
	for src, rules := range files {
		for _, r := range rules {
			if r.Record != "" {
				out = append(out, Query{Kind: KindRecord, Source: src, Name: r.Record, Raw: r.Expr, Expr: r.Expr})
				continue
			}
			out = append(out, Query{Kind: KindAlert, Source: src, Name: r.Alert, Raw: r.Expr, Expr: r.Expr})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, nil
}

// Analysis is what an expression references.
type Analysis struct {
	Metrics []string // metric names (selectors by name, or names a __name__ regex matches among KnownMetrics)
	Labels  []string // label names in matchers, by/without, on/ignoring, group_left/right
}

// Analyze parses expr (already substituted) and lists the metric and label
// names it uses. A __name__ regex matcher must match at least one known metric.
func Analyze(expr string) (Analysis, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return Analysis{}, err
	}
	metrics, lbls := map[string]bool{}, map[string]bool{}
	var walkErr error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if n.Name != "" {
				metrics[n.Name] = true
			}
			for _, m := range n.LabelMatchers {
				if m.Name != labels.MetricName {
					lbls[m.Name] = true
				}
				if m.Name == labels.MetricName && n.Name == "" {
					found := false
					for k := range KnownMetrics {
						if m.Matches(k) {
							metrics[k] = true
							found = true
						}
					}
					if !found && walkErr == nil {
						walkErr = fmt.Errorf("metric name matcher %s matches no known metric", m)
					}
				}
			}
		case *parser.AggregateExpr:
			for _, l := range n.Grouping {
				lbls[l] = true
			}
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				for _, l := range n.VectorMatching.MatchingLabels {
					lbls[l] = true
				}
				for _, l := range n.VectorMatching.Include {
					lbls[l] = true
				}
			}
		}
		return nil
	})
	if walkErr != nil {
		return Analysis{}, walkErr
	}
	return Analysis{Metrics: keys(metrics), Labels: keys(lbls)}, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Lint checks a query offline: it parses, it references at least one metric,
// and every metric and label name is known.
func Lint(q Query) []string {
	a, err := Analyze(q.Expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", q.ID(), err)}
	}
	var probs []string
	if len(a.Metrics) == 0 {
		probs = append(probs, fmt.Sprintf("%s: references no metric", q.ID()))
	}
	for _, m := range a.Metrics {
		_, recorded := RecordedMetrics[m]
		if _, ok := KnownMetrics[m]; !ok && !recorded {
			probs = append(probs, fmt.Sprintf("%s: unknown metric %s", q.ID(), m))
		}
	}
	for _, l := range a.Labels {
		if _, ok := KnownLabels[l]; !ok {
			probs = append(probs, fmt.Sprintf("%s: unknown label %s", q.ID(), l))
		}
	}
	return probs
}

// Measured returns what an alert expression measures: expr without its
// filters. A comparison without bool keeps its vector side, `and` and
// `unless` keep their left side, so the result has data whenever the
// series the alert reads do, firing or not; a query that cannot have data
// is an alert that can never fire.
func Measured(expr string) (string, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return "", err
	}
	return unfilter(e).String(), nil
}

func unfilter(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.BinaryExpr:
		switch {
		case n.Op == parser.LAND || n.Op == parser.LUNLESS:
			return unfilter(n.LHS)
		case n.Op.IsComparisonOperator() && !n.ReturnBool:
			if n.LHS.Type() == parser.ValueTypeVector {
				return unfilter(n.LHS)
			}
			return unfilter(n.RHS)
		}
		n.LHS, n.RHS = unfilter(n.LHS), unfilter(n.RHS)
		return n
	case *parser.ParenExpr:
		n.Expr = unfilter(n.Expr)
		return n
	case *parser.AggregateExpr:
		n.Expr = unfilter(n.Expr)
		return n
	case *parser.UnaryExpr:
		n.Expr = unfilter(n.Expr)
		return n
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = unfilter(a)
		}
		return n
	}
	return e
}
