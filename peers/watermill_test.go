package peers_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// kafkaBrokers is the real cluster named by EVENTSTREAM_KAFKA_BROKERS, else
// an in-process kfake cluster for the test.
func kafkaBrokers(t testing.TB) (brokers []string, real bool) {
	if v := strings.TrimSpace(os.Getenv(eventstreamtest.BrokersEnv)); v != "" {
		return strings.Split(v, ","), true
	}
	return eventstreamtest.KafkaCluster(t), false
}

// wmConfig is the bus behind the adapter. Beside the defaults:
// the suite publishes before it subscribes, so new groups start at the
// earliest offset; groups of up to 50 members join one after the other, so
// members heartbeat (and notice rebalances) every 100 ms; a subscription
// that leaves (Off) lets its lanes finish for up to a second. A Nack is a
// hand-back (eventstream.Requeue), which the adapter allows without bound.
func wmConfig(brokers []string, partitions int32) func() *eventstream.Config {
	return func() *eventstream.Config {
		cfg := eventstream.DefaultDistributedConfig(brokers)
		cfg.Kafka.Partitions = partitions
		cfg.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
		cfg.Kafka.HeartbeatInterval = 100 * time.Millisecond
		cfg.Kafka.FetchMaxWait = 100 * time.Millisecond
		cfg.ShutdownTimeout = time.Second
		return cfg
	}
}

func wmOptions() []eventstream.Option {
	return []eventstream.Option{eventstream.WithLogger(slog.New(slog.NewTextHandler(os.Stderr,
		&slog.HandlerOptions{Level: slog.LevelError})))}
}

// wmConstructor builds a publisher and a subscriber (in group, or in the
// topic's default group when group is ""), closed when the test ends even
// if the suite does not close them.
func wmConstructor(newConfig func() *eventstream.Config) tests.ConsumerGroupPubSubConstructor {
	return func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, err := newWMPublisher(newConfig(), wmOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := newWMSubscriber(newConfig(), group, wmOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = pub.Close()
			_ = sub.Close()
		})
		return pub, sub
	}
}

// TestWatermillPubSub runs watermill's universal Pub/Sub suite against
// Kafka mode, on topics of three partitions.
func TestWatermillPubSub(t *testing.T) {
	brokers, real := kafkaBrokers(t)
	features := tests.Features{
		ConsumerGroups: true,
		// At least once: a rebalance or a closing subscriber re-delivers
		// what was handled but not yet committed.
		ExactlyOnceDelivery: false,
		// Order is per partition (per key), and the suite publishes
		// without keys over three partitions: the one-partition run below
		// checks order.
		GuaranteedOrder: false,
		Persistent:      true,
		// A subscriber built by the suite's constructor joins its topic's
		// default group, which has already consumed the old messages (a
		// subscription without a group, InitialOffsetEarliest, would read
		// them, but the suite's other cases need the shared group).
		NewSubscriberReceivesOldMessages: false,
		// A message's context does not travel through Kafka.
		ContextPreserved: false,
	}
	// TestReconnect restarts the broker twice while 100 goroutines publish
	// 10,000 messages. It runs only on request (EVENTSTREAM_WATERMILL_RECONNECT
	// set, a real broker, and EVENTSTREAM_KAFKA_SCRIPT to restart it), else
	// the suite skips it ("no RestartServiceCommand provided"): the suite
	// records a message as sent in a goroutine it never waits for, after
	// Publish returned, so the consumer can see the last messages before
	// they are recorded. On a real broker it failed that way in 2 of 10 runs
	// ("received: 10000, sent: 9999 ... missing: [], extra [one id]", no
	// Publish failed or still running), and passed the 8 others: nothing
	// lost across the restarts. (kfake cannot be restarted.)
	if script := os.Getenv("EVENTSTREAM_KAFKA_SCRIPT"); real && script != "" && os.Getenv("EVENTSTREAM_WATERMILL_RECONNECT") != "" {
		features.RestartServiceCommand = []string{script, "restart"}
	}
	c := wmConstructor(wmConfig(brokers, 3))
	tests.TestPubSub(t, features, func(t *testing.T) (message.Publisher, message.Subscriber) { return c(t, "") }, c)
}

// TestWatermillPubSubOnePartition runs the suite on topics of one
// partition, where Kafka's order is the topic's order: the order and
// no-Ack cases run here.
func TestWatermillPubSubOnePartition(t *testing.T) {
	brokers, _ := kafkaBrokers(t)
	features := tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     true,
		Persistent:          true,
		ContextPreserved:    false,
	}
	c := wmConstructor(wmConfig(brokers, 1))
	tests.TestPubSub(t, features, func(t *testing.T) (message.Publisher, message.Subscriber) { return c(t, "") }, c)
}
