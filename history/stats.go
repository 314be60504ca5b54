package history

import "time"

// Counts are the figures of one topic/group row, or of all of them.
//
// Emitted and EmitFailed count Emits (messaging.client.sent.messages without
// and with error.type), Delivered deliveries to a consumer group
// (messaging.client.consumed.messages), Succeeded and Failed handler
// attempts (messaging.process.duration without and with error.type),
// Retried the attempts scheduled again (eventstream.retries), Requeued the
// events a handler handed back (eventstream.requeues), DeadLettered
// the events sent to a dead-letter topic (eventstream.dead_letters) and
// InFlight the deliveries under way (eventstream.in_flight).
//
// TimeLag is how long the oldest event accepted for the group and not yet
// handled has waited (eventstream.consumer.time_lag): 0 when the group is
// caught up, and in the totals the largest of the rows. It is read when
// the stats are, from the subscriptions of this process only, so it is 0
// once the group has no member here.
//
// Latency* are percentiles of processing time, Delivery* of the time from
// emit to the start of processing, both estimated from the histograms'
// fixed buckets (the metrics' own bounds): linear within the bucket that
// holds the percentile, so an estimate never leaves that bucket's edges,
// and a percentile in the overflow bucket (over 10 s) reads as 10 s however
// far the values lie. Zero when nothing was recorded.
type Counts struct {
	Emitted      int64         `json:"emitted"`
	EmitFailed   int64         `json:"emit_failed"`
	Delivered    int64         `json:"delivered"`
	Succeeded    int64         `json:"succeeded"`
	Failed       int64         `json:"failed"`
	Retried      int64         `json:"retried"`
	Requeued     int64         `json:"requeued"`
	DeadLettered int64         `json:"dead_lettered"`
	InFlight     int64         `json:"in_flight"`
	TimeLag      time.Duration `json:"time_lag_ns"`

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
