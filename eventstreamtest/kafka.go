package eventstreamtest

import (
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BrokersEnv names the environment variable that selects a real Kafka
// cluster for integration tests: comma-separated seed brokers.
const BrokersEnv = "EVENTSTREAM_KAFKA_BROKERS"

// KafkaCluster starts an in-process Kafka (franz-go's kfake) for the test
// and returns its seed brokers; it is closed when the test ends. Topics are
// not auto-created (the bus provisions its own); new topics get three
// partitions unless opts say otherwise.
func KafkaCluster(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(3)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// RealKafkaBrokers returns the brokers named by EVENTSTREAM_KAFKA_BROKERS,
// or skips the test when it is unset.
func RealKafkaBrokers(t testing.TB) []string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(BrokersEnv))
	if v == "" {
		t.Skip(BrokersEnv + " is not set: no real Kafka cluster to test against (scripts/kafka.sh start prints one)")
	}
	var out []string
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
