package telemetry

// Internals the tests check against.
var DurationBuckets = durationBuckets[:]

// PutSend writes a send record of id into t's history, as Emit does.
func PutSend(t *Telemetry, id string) {
	r := record{labels: &benchLabels, op: opSend, start: 1, dur: 2}
	r.setID(id)
	t.ring.sends.put(&r)
}

var benchLabels = labels{topic: "t"}
