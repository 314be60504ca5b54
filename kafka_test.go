package eventstream_test

import (
	"testing"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// TestKafkaConformance runs the conformance suite against Kafka mode on an
// in-process Kafka (kfake): no broker needed.
func TestKafkaConformance(t *testing.T) {
	eventstreamtest.Run(t, kafkaTransport(eventstreamtest.KafkaCluster(t)))
}

func TestKafkaConformanceWithoutTelemetry(t *testing.T) {
	eventstreamtest.Run(t, kafkaTransport(eventstreamtest.KafkaCluster(t), eventstream.WithoutTelemetry()))
}

// The compact record format passes the same suite.
func TestKafkaConformanceCompact(t *testing.T) {
	eventstreamtest.Run(t, kafkaTransportTuned(eventstreamtest.KafkaCluster(t), compactConfig))
}
