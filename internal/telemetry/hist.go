package telemetry

import (
	"math"
	"sync/atomic"
	"time"
)

// boundsNS are durationBuckets in nanoseconds, for bucketing without
// floating point.
var boundsNS = func() (b [len(durationBuckets)]int64) {
	for i, s := range durationBuckets {
		b[i] = int64(math.Round(s * 1e9))
	}
	return b
}()

const nBuckets = len(durationBuckets) + 1 // the last one is the overflow

// histogram counts durations in the buckets of durationBuckets: bucket i
// holds (bounds[i-1], bounds[i]], as the OTel SDK's histogram does, so the
// two agree bucket for bucket.
type histogram struct {
	counts [nBuckets]atomic.Uint64
}

func bucketOf(d time.Duration) int {
	ns := int64(d)
	for i, b := range boundsNS { // short durations, the common case, end early
		if ns <= b {
			return i
		}
	}
	return len(boundsNS)
}

func (h *histogram) record(d time.Duration) { h.counts[bucketOf(d)].Add(1) }

// snapshot is a histogram's counts at one moment, mergeable.
type snapshot [nBuckets]uint64

func (h *histogram) snapshot() (s snapshot) {
	for i := range h.counts {
		s[i] = h.counts[i].Load()
	}
	return s
}

func (s *snapshot) merge(o *snapshot) {
	for i := range s {
		s[i] += o[i]
	}
}

func (h *histogram) add(s *snapshot) {
	for i := range s {
		if s[i] != 0 {
			h.counts[i].Add(s[i])
		}
	}
}

// quantile estimates the q-quantile from bucket counts, linearly within the
// bucket that holds it, so the estimate never leaves that bucket's edges
// (the first bucket starts at 0). A quantile that falls in the overflow
// bucket is its lower edge, the last bound: one value far out (a clock
// years off) cannot stretch it. Zero when nothing was recorded.
func (s *snapshot) quantile(q float64) time.Duration {
	var total uint64
	for _, c := range s {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	for i, c := range s {
		if c == 0 {
			continue
		}
		if cum+float64(c) < rank {
			cum += float64(c)
			continue
		}
		var lo int64
		if i > 0 {
			lo = boundsNS[i-1]
		}
		if i == len(boundsNS) {
			return time.Duration(lo)
		}
		hi := boundsNS[i]
		return time.Duration(float64(lo) + float64(hi-lo)*(rank-cum)/float64(c))
	}
	return time.Duration(boundsNS[len(boundsNS)-1])
}
