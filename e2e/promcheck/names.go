package promcheck

// The Prometheus names of the metrics EventStream exports, as written by
// go.opentelemetry.io/otel/exporters/prometheus v0.69.0 (default translation
// strategy UnderscoreEscapingWithSuffixes) behind promhttp with OpenMetrics
// enabled: dots become underscores, the unit `s` becomes the suffix
// `_seconds`, curly-brace units such as `{message}` are dropped, counters get
// `_total` and histograms `_bucket`/`_sum`/`_count`. Verified by exporting each
// instrument of telemetry/names.go (and of franz-go's kotel v1.7.1 Meter) and
// reading /metrics.
var KnownMetrics = map[string]string{
	// The OpenTelemetry messaging metrics.
	"messaging_client_sent_messages_total":               "messaging.client.sent.messages (Int64Counter {message})",
	"messaging_client_consumed_messages_total":           "messaging.client.consumed.messages (Int64Counter {message})",
	"messaging_client_operation_duration_seconds_bucket": "messaging.client.operation.duration (Float64Histogram s)",
	"messaging_client_operation_duration_seconds_sum":    "messaging.client.operation.duration (Float64Histogram s)",
	"messaging_client_operation_duration_seconds_count":  "messaging.client.operation.duration (Float64Histogram s)",
	"messaging_process_duration_seconds_bucket":          "messaging.process.duration (Float64Histogram s)",
	"messaging_process_duration_seconds_sum":             "messaging.process.duration (Float64Histogram s)",
	"messaging_process_duration_seconds_count":           "messaging.process.duration (Float64Histogram s)",

	// The library's own metrics.
	"eventstream_retries_total":                   "eventstream.retries (Int64Counter {retry})",
	"eventstream_requeues_total":                  "eventstream.requeues (Int64Counter {message})",
	"eventstream_dead_letters_total":              "eventstream.dead_letters (Int64Counter {message})",
	"eventstream_in_flight":                       "eventstream.in_flight (Int64UpDownCounter {message})",
	"eventstream_queue_depth":                     "eventstream.queue.depth (Int64ObservableGauge {message})",
	"eventstream_pool_running":                    "eventstream.pool.running (Int64ObservableGauge {goroutine})",
	"eventstream_pool_capacity":                   "eventstream.pool.capacity (Int64ObservableGauge {goroutine})",
	"eventstream_pool_waiting":                    "eventstream.pool.waiting (Int64ObservableGauge {task})",
	"eventstream_consumer_lag":                    "eventstream.consumer.lag (Int64ObservableGauge {message}, Kafka mode)",
	"eventstream_consumer_time_lag_seconds":       "eventstream.consumer.time_lag (Float64ObservableGauge s)",
	"eventstream_circuit_state":                   "eventstream.circuit.state (Int64ObservableGauge {state}: 0 closed, 1 half-open, 2 open)",
	"eventstream_dead_letter_blocked":             "eventstream.dead_letter.blocked (Int64ObservableGauge {message})",
	"eventstream_delivery_latency_seconds_bucket": "eventstream.delivery.latency (Float64Histogram s)",
	"eventstream_delivery_latency_seconds_sum":    "eventstream.delivery.latency (Float64Histogram s)",
	"eventstream_delivery_latency_seconds_count":  "eventstream.delivery.latency (Float64Histogram s)",

	// franz-go plugin/kotel v1.7.1 Meter (Kafka mode). Its byte counters use
	// the unit "by", which the exporter keeps as a `_by` suffix.
	"messaging_kafka_connects_count_total":         "messaging.kafka.connects.count (unit 1, node_id)",
	"messaging_kafka_connect_errors_count_total":   "messaging.kafka.connect_errors.count (unit 1, node_id)",
	"messaging_kafka_disconnects_count_total":      "messaging.kafka.disconnects.count (unit 1, node_id)",
	"messaging_kafka_write_errors_count_total":     "messaging.kafka.write_errors.count (unit 1, node_id)",
	"messaging_kafka_write_bytes_by_total":         "messaging.kafka.write_bytes (unit by, node_id)",
	"messaging_kafka_read_errors_count_total":      "messaging.kafka.read_errors.count (unit 1, node_id)",
	"messaging_kafka_read_bytes_count_by_total":    "messaging.kafka.read_bytes.count (unit by, node_id)",
	"messaging_kafka_produce_bytes_count_by_total": "messaging.kafka.produce_bytes.count (unit by, node_id, topic)",
	"messaging_kafka_produce_records_count_total":  "messaging.kafka.produce_records.count (unit 1, node_id, topic)",
	"messaging_kafka_fetch_bytes_count_by_total":   "messaging.kafka.fetch_bytes.count (unit by, node_id, topic)",
	"messaging_kafka_fetch_records_count_total":    "messaging.kafka.fetch_records.count (unit 1, node_id, topic)",

	// Written by Prometheus and the exporter themselves.
	"up":          "Prometheus: 1 when the last scrape of a target succeeded",
	"target_info": "OpenTelemetry resource attributes of the process",
}

// RecordedMetrics are the series that the recording rules of
// grafana/prometheus/rules write (TestRecordedMetricsMatchRules keeps the
// two in step): queries may read them beside the exported metrics.
var RecordedMetrics = map[string]string{
	"eventstream:slo_objective:ratio":              "SLO objective per SLI (parameter; per topic and group where set)",
	"eventstream:slo_latency_threshold:le":         "latency SLO threshold as a bucket bound (parameter)",
	"eventstream:slo_group_latency_threshold:le":   "latency SLO threshold of each topic and group",
	"eventstream:slo_errors:ratio_rate5m":          "SLI error ratio over 5m",
	"eventstream:slo_errors:ratio_rate30m":         "SLI error ratio over 30m",
	"eventstream:slo_errors:ratio_rate1h":          "SLI error ratio over 1h",
	"eventstream:slo_errors:ratio_rate2h":          "SLI error ratio over 2h",
	"eventstream:slo_errors:ratio_rate6h":          "SLI error ratio over 6h",
	"eventstream:slo_errors:ratio_rate1d":          "SLI error ratio over 1d",
	"eventstream:slo_errors:ratio_rate3d":          "SLI error ratio over 3d",
	"eventstream:slo_errors:ratio_rate30d":         "SLI error ratio over the 30-day period",
	"eventstream:slo_group_objective:ratio":        "SLO objective of each topic and group",
	"eventstream:slo_error_budget:ratio":           "error budget: 1 - objective",
	"eventstream:slo_burn_rate:ratio_rate1h":       "burn rate over 1h",
	"eventstream:slo_burn_rate:ratio_rate30d":      "burn rate over the period",
	"eventstream:slo_error_budget_remaining:ratio": "share of the period's error budget left",
}

// KnownLabels are the label names the queries may use: the attributes of
// telemetry/names.go with dots turned into underscores, the exporter's scope
// labels, kotel's labels, and the labels Prometheus adds (job, instance, and
// the target label service from grafana/prometheus/targets).
var KnownLabels = map[string]string{
	"messaging_system":                   "messaging.system",
	"messaging_operation_name":           "messaging.operation.name",
	"messaging_destination_name":         "messaging.destination.name",
	"messaging_consumer_group_name":      "messaging.consumer.group.name",
	"messaging_destination_partition_id": "messaging.destination.partition.id",
	"error_type":                         "error.type",
	"eventstream_subscription":           "eventstream.subscription",
	"otel_scope_name":                    "instrumentation scope name",
	"otel_scope_version":                 "instrumentation scope version",
	"otel_scope_schema_url":              "instrumentation scope schema URL",
	"le":                                 "histogram bucket bound",
	"node_id":                            "kotel: broker node id",
	"topic":                              "kotel: topic",
	"outcome":                            "kotel: success/failure with WithMergedConnectsMeter",
	"job":                                "Prometheus scrape job",
	"instance":                           "Prometheus scrape target",
	"service":                            "target label from grafana/prometheus/targets",
	"__name__":                           "metric name",
	"slo":                                "recording rules: the SLI (handled, latency)",
}

// kafkaOnly and memoryOnly are metrics that exist in one transport only: a
// query over them has no data unless a process runs in that mode.
var (
	kafkaOnly = map[string]bool{
		"eventstream_consumer_lag": true,
	}
	memoryOnly = map[string]bool{
		"eventstream_queue_depth": true,
	}
)

func isKafkaOnly(metric string) bool {
	return kafkaOnly[metric] || len(metric) > len("messaging_kafka_") && metric[:len("messaging_kafka_")] == "messaging_kafka_"
}
