package eventstream_test

import (
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// kafkaTestConfig is a distributed config tuned for tests: rebalances are
// noticed within 100ms.
func kafkaTestConfig(brokers []string) *eventstream.Config {
	cfg := eventstream.DefaultDistributedConfig(brokers)
	cfg.Kafka.HeartbeatInterval = 100 * time.Millisecond
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Kafka.CommitInterval = 200 * time.Millisecond
	return cfg
}

func kafkaTransport(brokers []string, opts ...eventstream.Option) eventstreamtest.Transport {
	return kafkaTransportTuned(brokers, nil, opts...)
}

// kafkaTransportTuned is kafkaTransport with tune applied to each bus's
// config.
func kafkaTransportTuned(brokers []string, tune func(*eventstream.Config), opts ...eventstream.Option) eventstreamtest.Transport {
	return eventstreamtest.Transport{
		Timeout: 20 * time.Second,
		New: func(t *testing.T, s eventstreamtest.Setup) eventstream.EventBus {
			cfg := kafkaTestConfig(brokers)
			if tune != nil {
				tune(cfg)
			}
			if s.BufferSize > 0 {
				cfg.Memory.BufferSize = s.BufferSize
			}
			if s.ShutdownTimeout > 0 {
				cfg.ShutdownTimeout = s.ShutdownTimeout
			}
			b, err := eventstream.New(cfg, append(append([]eventstream.Option(nil), opts...), s.Options...)...)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

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
