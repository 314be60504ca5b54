package history

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"libx.net/eventstream/telemetry"
)

// Counts are the figures of one topic/group row, or of all of them.
//
// Emitted and EmitFailed come from messaging.client.sent.messages (without
// and with error.type), Delivered from messaging.client.consumed.messages,
// Succeeded and Failed from messaging.process.duration (handler attempts
// without and with error.type), Retried from eventstream.retries,
// DeadLettered from eventstream.dead_letters and InFlight from
// eventstream.in_flight. Latency* are percentiles of processing time
// (messaging.process.duration), Delivery* of the time from emit to the
// start of processing (eventstream.delivery.latency), both estimated from
// histogram buckets (linear within a bucket); zero when nothing was recorded.
type Counts struct {
	Emitted      int64 `json:"emitted"`
	EmitFailed   int64 `json:"emit_failed"`
	Delivered    int64 `json:"delivered"`
	Succeeded    int64 `json:"succeeded"`
	Failed       int64 `json:"failed"`
	Retried      int64 `json:"retried"`
	DeadLettered int64 `json:"dead_lettered"`
	InFlight     int64 `json:"in_flight"`

	LatencyP50  time.Duration `json:"latency_p50_ns"`
	LatencyP95  time.Duration `json:"latency_p95_ns"`
	LatencyP99  time.Duration `json:"latency_p99_ns"`
	DeliveryP50 time.Duration `json:"delivery_p50_ns"`
	DeliveryP95 time.Duration `json:"delivery_p95_ns"`
	DeliveryP99 time.Duration `json:"delivery_p99_ns"`
}

// Row is the figures of one topic and consumer group. A row with an empty
// Group carries the emit side of its topic (Emitted, EmitFailed); group rows
// carry the consume side.
type Row struct {
	Topic string `json:"topic"`
	Group string `json:"group,omitempty"`
	Counts
}

// Stats are the totals over every row, and the rows sorted by topic, group.
type Stats struct {
	Counts
	Rows []Row `json:"rows"`
}

// StatsReader reads Stats from the library's metrics. It wraps an SDK
// ManualReader: register Reader() on the MeterProvider the bus uses
// (sdkmetric.WithReader); it sees only scope telemetry.ScopeName.
type StatsReader struct {
	r *sdkmetric.ManualReader
}

// NewStatsReader returns a StatsReader with cumulative temporality.
func NewStatsReader() *StatsReader {
	return &StatsReader{r: sdkmetric.NewManualReader()}
}

// Reader returns the metric reader to register on a MeterProvider.
func (s *StatsReader) Reader() sdkmetric.Reader { return s.r }

// Collect reads the current figures.
func (s *StatsReader) Collect(ctx context.Context) (Stats, error) {
	var rm metricdata.ResourceMetrics
	if err := s.r.Collect(ctx, &rm); err != nil {
		return Stats{}, err
	}
	return StatsFrom(&rm), nil
}

// StatsFrom computes Stats from collected metrics (of any reader with
// cumulative temporality), reading only scope telemetry.ScopeName.
func StatsFrom(rm *metricdata.ResourceMetrics) Stats {
	acc := newAccumulator()
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			acc.add(m)
		}
	}
	return acc.stats()
}

type rowKey struct{ topic, group string }

type rowAcc struct {
	Counts
	process, delivery hist
}

type accumulator struct {
	rows map[rowKey]*rowAcc
}

func newAccumulator() *accumulator { return &accumulator{rows: map[rowKey]*rowAcc{}} }

func (a *accumulator) row(set attribute.Set) *rowAcc {
	var k rowKey
	if v, ok := set.Value(telemetry.KeyDestination); ok {
		k.topic = v.AsString()
	}
	if v, ok := set.Value(telemetry.KeyConsumerGroup); ok {
		k.group = v.AsString()
	}
	r := a.rows[k]
	if r == nil {
		r = &rowAcc{}
		a.rows[k] = r
	}
	return r
}

func hasErrorType(set attribute.Set) bool {
	return set.HasValue(telemetry.KeyErrorType)
}

func (a *accumulator) add(m metricdata.Metrics) {
	switch m.Name {
	case telemetry.MetricSentMessages:
		a.sum(m, func(r *rowAcc, set attribute.Set, v int64) {
			if hasErrorType(set) {
				r.EmitFailed += v
			} else {
				r.Emitted += v
			}
		})
	case telemetry.MetricConsumedMessages:
		a.sum(m, func(r *rowAcc, _ attribute.Set, v int64) { r.Delivered += v })
	case telemetry.MetricRetries:
		a.sum(m, func(r *rowAcc, _ attribute.Set, v int64) { r.Retried += v })
	case telemetry.MetricDeadLetters:
		a.sum(m, func(r *rowAcc, _ attribute.Set, v int64) { r.DeadLettered += v })
	case telemetry.MetricInFlight:
		a.sum(m, func(r *rowAcc, _ attribute.Set, v int64) { r.InFlight += v })
	case telemetry.MetricProcessDuration:
		a.histogram(m, func(r *rowAcc, dp metricdata.HistogramDataPoint[float64]) {
			if hasErrorType(dp.Attributes) {
				r.Failed += int64(dp.Count)
			} else {
				r.Succeeded += int64(dp.Count)
			}
			r.process.merge(dp)
		})
	case telemetry.MetricDeliveryLatency:
		a.histogram(m, func(r *rowAcc, dp metricdata.HistogramDataPoint[float64]) { r.delivery.merge(dp) })
	}
}

func (a *accumulator) sum(m metricdata.Metrics, f func(*rowAcc, attribute.Set, int64)) {
	if s, ok := m.Data.(metricdata.Sum[int64]); ok {
		for _, dp := range s.DataPoints {
			f(a.row(dp.Attributes), dp.Attributes, dp.Value)
		}
	}
}

func (a *accumulator) histogram(m metricdata.Metrics, f func(*rowAcc, metricdata.HistogramDataPoint[float64])) {
	if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
		for _, dp := range h.DataPoints {
			f(a.row(dp.Attributes), dp)
		}
	}
}

func (a *accumulator) stats() Stats {
	var st Stats
	var total rowAcc
	for k, r := range a.rows {
		r.fill()
		st.Rows = append(st.Rows, Row{Topic: k.topic, Group: k.group, Counts: r.Counts})
		c := &total.Counts
		c.Emitted += r.Emitted
		c.EmitFailed += r.EmitFailed
		c.Delivered += r.Delivered
		c.Succeeded += r.Succeeded
		c.Failed += r.Failed
		c.Retried += r.Retried
		c.DeadLettered += r.DeadLettered
		c.InFlight += r.InFlight
		total.process.mergeHist(&r.process)
		total.delivery.mergeHist(&r.delivery)
	}
	total.fill()
	st.Counts = total.Counts
	slices.SortFunc(st.Rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Group, b.Group))
	})
	return st
}

func (r *rowAcc) fill() {
	r.LatencyP50, r.LatencyP95, r.LatencyP99 = r.process.quantile(0.50), r.process.quantile(0.95), r.process.quantile(0.99)
	r.DeliveryP50, r.DeliveryP95, r.DeliveryP99 = r.delivery.quantile(0.50), r.delivery.quantile(0.95), r.delivery.quantile(0.99)
}

// hist is a merge of histogram points with the same bounds (all the
// library's histograms share telemetry.DurationBuckets).
type hist struct {
	bounds   []float64
	counts   []uint64
	total    uint64
	min, max float64
	minmax   bool
}

func (h *hist) merge(dp metricdata.HistogramDataPoint[float64]) {
	h.mergeParts(dp.Bounds, dp.BucketCounts, dp.Count)
	if mn, ok := dp.Min.Value(); ok {
		mx, _ := dp.Max.Value()
		h.mergeMinMax(mn, mx)
	}
}

func (h *hist) mergeHist(o *hist) {
	h.mergeParts(o.bounds, o.counts, o.total)
	if o.minmax {
		h.mergeMinMax(o.min, o.max)
	}
}

func (h *hist) mergeParts(bounds []float64, counts []uint64, total uint64) {
	if total == 0 || len(counts) != len(bounds)+1 {
		return
	}
	if h.counts == nil {
		h.bounds = bounds
		h.counts = make([]uint64, len(counts))
	} else if !slices.Equal(h.bounds, bounds) {
		return // different layouts cannot be merged; not produced by this library
	}
	for i, c := range counts {
		h.counts[i] += c
	}
	h.total += total
}

func (h *hist) mergeMinMax(mn, mx float64) {
	if !h.minmax {
		h.min, h.max, h.minmax = mn, mx, true
		return
	}
	h.min, h.max = math.Min(h.min, mn), math.Max(h.max, mx)
}

// quantile estimates the q-quantile, interpolating linearly inside the
// bucket that holds it; the first bucket starts at the minimum seen (or 0),
// the overflow bucket ends at the maximum seen (or the last bound).
func (h *hist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := q * float64(h.total)
	var cum float64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) < rank {
			cum += float64(c)
			continue
		}
		lo, hi := 0.0, 0.0
		if i > 0 {
			lo = h.bounds[i-1]
		}
		if i < len(h.bounds) {
			hi = h.bounds[i]
		} else {
			hi = lo
		}
		if h.minmax {
			lo, hi = math.Max(lo, h.min), math.Min(math.Max(hi, lo), h.max)
			if i == len(h.bounds) {
				hi = h.max
			}
			if hi < lo {
				hi = lo
			}
		}
		v := lo + (hi-lo)*(rank-cum)/float64(c)
		return time.Duration(v * float64(time.Second))
	}
	if h.minmax {
		return time.Duration(h.max * float64(time.Second))
	}
	return time.Duration(h.bounds[len(h.bounds)-1] * float64(time.Second))
}
