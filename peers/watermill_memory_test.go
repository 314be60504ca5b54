package peers_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"libx.net/eventstream"
)

// Watermill's universal suite against memory mode with retention on,
// through the same adapter as Kafka mode (adapter_test.go). The suite's
// "instances" of a Pub/Sub are, in memory mode, views of one process's bus:
// every Publisher and Subscriber a test builds shares one bus (as GoChannel
// is one object); each Subscribe is one subscription, closing it is Off,
// a Nack a Requeue. With Memory.RetainEvents the bus keeps what was
// published before a group subscribed, and what a group's last member left
// unhandled, so the suite's persistence cases pass.

// wmMemoryConfig: retention large enough for the suite's biggest test; a
// closing subscription hands what it holds back after a second at most.
func wmMemoryConfig() *eventstream.Config {
	cfg := eventstream.DefaultConfig()
	cfg.Memory.RetainEvents = 100_000
	cfg.ShutdownTimeout = time.Second
	return cfg
}

// memoryBuses holds the bus of each running test.
var memoryBuses sync.Map // *testing.T → eventstream.EventBus

func memoryBus(t *testing.T) eventstream.EventBus {
	if b, ok := memoryBuses.Load(t); ok {
		return b.(eventstream.EventBus)
	}
	b, err := eventstream.New(wmMemoryConfig(), wmOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	memoryBuses.Store(t, b)
	t.Cleanup(func() {
		memoryBuses.Delete(t)
		_ = b.Close()
	})
	return b
}

func wmMemoryConstructor(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	bus := sharedBus{memoryBus(t)}
	pub, sub := &wmPublisher{bus: bus}, &wmSubscriber{bus: bus, group: group, subs: map[*wmSubscription]struct{}{}}
	t.Cleanup(func() { _ = sub.Close() })
	return pub, sub
}

// sharedBus is the test's bus as one Publisher or Subscriber sees it:
// closing one leaves the bus to the test and the others.
type sharedBus struct{ eventstream.EventBus }

func (sharedBus) Close() error { return nil }

// TestWatermillPubSubMemory runs watermill's universal suite against
// memory mode with retention.
func TestWatermillPubSubMemory(t *testing.T) {
	features := tests.Features{
		ConsumerGroups: true,
		// At least once: a closing subscription's unacknowledged messages
		// come again, and with them what its group handled after them.
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     true,
		// Every Pub/Sub a test builds is a view of the test's one bus,
		// whose retention keeps what no subscriber has taken yet.
		Persistent: true,
		// A subscriber built by the suite's constructor joins its topic's
		// default group, which has already consumed the old messages (a
		// group new to the topic would get every kept one).
		NewSubscriberReceivesOldMessages: false,
		// Emit's context does not reach the handler in either mode.
		ContextPreserved: false,
	}
	tests.TestPubSub(t, features, func(t *testing.T) (message.Publisher, message.Subscriber) {
		return wmMemoryConstructor(t, "")
	}, wmMemoryConstructor)
}
