package promcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Result is the outcome of one query against Prometheus.
type Result struct {
	Query Query
	// ParseError is set when Prometheus rejected the expression as invalid
	// (errorType bad_data).
	ParseError string
	// Error is any other failure: evaluation error, timeout, HTTP error.
	Error string
	// Series is the number of series (or 1 for a scalar) in the result.
	Series int
	// AllowedNoData, when set, says why no data is acceptable for this query.
	AllowedNoData string
}

// OK reports whether the query evaluated.
func (r Result) OK() bool { return r.ParseError == "" && r.Error == "" }

// NoData reports whether the query evaluated to an empty result.
func (r Result) NoData() bool { return r.OK() && r.Series == 0 }

// Client queries the Prometheus HTTP API.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:9090
	HTTP    *http.Client
}

// NewClient returns a client for the Prometheus at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 15 * time.Second}}
}

type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// Instant runs expr through /api/v1/query at the current time.
func (c *Client) Instant(ctx context.Context, expr string) (series int, parseErr, err error) {
	form := url.Values{"query": {expr}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return 0, nil, err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, nil, fmt.Errorf("HTTP %d, undecodable body: %.200s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		if r.ErrorType == "bad_data" {
			return 0, fmt.Errorf("%s", r.Error), nil
		}
		return 0, nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	switch r.Data.ResultType {
	case "vector", "matrix":
		var list []json.RawMessage
		if err := json.Unmarshal(r.Data.Result, &list); err != nil {
			return 0, nil, err
		}
		return len(list), nil, nil
	case "scalar", "string":
		return 1, nil, nil
	}
	return 0, nil, fmt.Errorf("unknown result type %q", r.Data.ResultType)
}

// Run evaluates one query.
func (c *Client) Run(ctx context.Context, q Query) Result {
	res := Result{Query: q}
	n, perr, err := c.Instant(ctx, q.Expr)
	switch {
	case perr != nil:
		res.ParseError = perr.Error()
	case err != nil:
		res.Error = err.Error()
	default:
		res.Series = n
	}
	return res
}

// Modes returns the messaging.system values ("memory", "kafka") present in
// Prometheus, read from metrics every EventStream process exports.
func (c *Client) Modes(ctx context.Context) (map[string]bool, error) {
	const q = `count by (messaging_system) ({__name__=~"messaging_client_(sent|consumed)_messages_total|eventstream_pool_capacity"})`
	form := url.Values{"query": {q}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("modes query: %s", r.Error)
	}
	out := map[string]bool{}
	for _, s := range r.Data.Result {
		out[s.Metric["messaging_system"]] = true
	}
	return out, nil
}

// AllowedNoData says whether an empty result is acceptable for q, given the
// modes (messaging.system values) that have data, and why. The list is short
// on purpose:
//   - alert expressions: an alert that is not firing has no data;
//   - Kafka-only metrics (consumer lag, the kotel client counters) when no
//     process runs in Kafka mode;
//   - memory-only metrics (queue depth) when no process runs in memory mode.
//
// Panels over failures (error ratio, retries, dead letters) are not on it:
// their queries fall back to zeros, so they have data in a run without
// failures too.
func AllowedNoData(q Query, modes map[string]bool) (string, bool) {
	if q.Kind == KindAlert {
		return "alert not firing", true
	}
	a, err := Analyze(q.Expr)
	if err != nil {
		return "", false
	}
	for _, m := range a.Metrics {
		if isKafkaOnly(m) && !modes["kafka"] {
			return fmt.Sprintf("%s is exported in Kafka mode only and no process runs in Kafka mode", m), true
		}
		if memoryOnly[m] && !modes["memory"] {
			return fmt.Sprintf("%s is exported in memory mode only and no process runs in memory mode", m), true
		}
	}
	return "", false
}

// Report is the outcome of CheckAll.
type Report struct {
	Modes   map[string]bool
	Results []Result
}

// Failed returns the queries that did not parse or did not evaluate.
func (r Report) Failed() []Result {
	var out []Result
	for _, x := range r.Results {
		if !x.OK() {
			out = append(out, x)
		}
	}
	return out
}

// MissingData returns the queries with no data that are not allowed to be empty.
func (r Report) MissingData() []Result {
	var out []Result
	for _, x := range r.Results {
		if x.NoData() && x.AllowedNoData == "" {
			out = append(out, x)
		}
	}
	return out
}

// CheckAll evaluates every query against the Prometheus at baseURL. Queries
// that return no data (and are not allowed to) are retried every poll until
// wait has passed, since series appear only after the next scrape; pass 0 to
// check once.
func CheckAll(ctx context.Context, baseURL string, qs []Query, wait, poll time.Duration) (Report, error) {
	c := NewClient(baseURL)
	deadline := time.Now().Add(wait)
	rep := Report{Results: make([]Result, len(qs))}
	pending := make([]int, len(qs))
	for i := range qs {
		pending[i] = i
	}
	for {
		modes, err := c.Modes(ctx)
		if err != nil {
			return rep, err
		}
		rep.Modes = modes
		var next []int
		for _, i := range pending {
			r := c.Run(ctx, qs[i])
			if r.NoData() {
				r.AllowedNoData, _ = AllowedNoData(qs[i], modes)
			}
			rep.Results[i] = r
			if r.Error != "" || (r.NoData() && r.AllowedNoData == "") {
				next = append(next, i)
			}
		}
		pending = next
		if len(pending) == 0 || time.Now().Add(poll).After(deadline) {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(poll):
		}
	}
}
