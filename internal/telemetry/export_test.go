package telemetry

import (
	"runtime"
	"time"
)

// Internals the tests check against.
var DurationBuckets = durationBuckets[:]

// PutSend writes a send record of id into t's history, as Emit does.
func PutSend(t *Telemetry, id string) {
	r := record{labels: &benchLabels, op: opSend, start: 1, dur: 2}
	r.setID(id)
	t.ring.sends.put(&r)
}

var benchLabels = labels{topic: "t"}

// Quantile is GetStats's estimate of the q-quantile from bucket counts
// (len(DurationBuckets)+1 of them, as an OTel histogram point has).
func Quantile(counts []uint64, q float64) time.Duration {
	var s snapshot
	copy(s[:], counts)
	return s.quantile(q)
}

// OnHistoryFreed calls f once t's history has been garbage collected.
func OnHistoryFreed(t *Telemetry, f func()) {
	runtime.AddCleanup(t.ring, func(f func()) { f() }, f)
}

// SetSeriesTiming makes t's per-second sampler tick every every and stop
// after idle without a look; call it before the first Series.
func SetSeriesTiming(t *Telemetry, every, idle time.Duration) {
	p := t.perSecondOnce()
	p.every, p.idle = every, idle
}
