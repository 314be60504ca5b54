package peers_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"libx.net/eventstream"
	"libx.net/eventstream/middleware"
)

// Watermill's universal suite against memory mode with retention on. The
// suite's "instances" of a Pub/Sub are, in memory mode, views of one
// process's bus: every Publisher and Subscriber a test builds shares one
// bus (as GoChannel is one object), each Subscribe is one subscription,
// and closing it is Off. With Memory.RetainEvents the bus keeps what was
// published before a group subscribed, and what a group's last member left
// unhandled, so the suite's persistence cases pass.

// wmMemoryConfig: retention large enough for the suite's biggest test; a
// Nack redelivers as often as it comes (retries never run out, nothing is
// dead-lettered); a closing subscription hands what it holds back after
// 200 ms.
func wmMemoryConfig() *eventstream.Config {
	cfg := eventstream.DefaultConfig()
	cfg.Memory.RetainEvents = 100_000
	cfg.ShutdownTimeout = 200 * time.Millisecond
	cfg.Retry = &eventstream.RetryPolicy{MaxRetries: math.MaxInt,
		BackoffStrategy: middleware.BackoffConstant, InitialDelay: 10 * time.Millisecond}
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
	bus := memoryBus(t)
	pub, sub := &wmSharedPublisher{wmPublisher{bus: bus}}, &wmMemorySubscriber{bus: bus, group: group, subs: map[*wmMemorySubscription]struct{}{}}
	t.Cleanup(func() { _ = sub.Close() })
	return pub, sub
}

// wmSharedPublisher publishes on the test's bus; closing it leaves the bus
// to the test.
type wmSharedPublisher struct{ wmPublisher }

func (*wmSharedPublisher) Close() error { return nil }

// errLeaving is what a handler returns for a message its subscription did
// not acknowledge before closing: the event waits in its lane and Off hands
// it to the group (or keeps it for the group's return).
var errLeaving = errors.New("watermill subscription closed before acknowledging")

type wmMemorySubscriber struct {
	bus   eventstream.EventBus
	group string

	mu     sync.Mutex
	closed bool
	subs   map[*wmMemorySubscription]struct{}
}

type wmMemorySubscription struct {
	bus  eventstream.EventBus
	sub  eventstream.Subscription
	out  chan *message.Message
	ctx  context.Context // the Subscribe ctx: cancelled when the subscription closes
	stop context.CancelFunc
	done chan struct{}
	err  error

	mu       sync.Mutex
	closing  bool
	handlers sync.WaitGroup
}

func (s *wmMemorySubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("subscriber closed")
	}
	sub := &wmMemorySubscription{bus: s.bus, out: make(chan *message.Message), done: make(chan struct{})}
	sub.ctx, sub.stop = context.WithCancel(ctx)
	group := s.group
	if group == "" {
		group = topic + ".watermill"
	}
	var err error
	if sub.sub, err = s.bus.On(topic, sub.handle, eventstream.WithConsumerGroup(group)); err != nil {
		sub.stop()
		return nil, err
	}
	s.subs[sub] = struct{}{}
	go func() {
		<-sub.ctx.Done()
		sub.close()
	}()
	return sub.out, nil
}

func (s *wmMemorySubscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	subs := s.subs
	s.subs = map[*wmMemorySubscription]struct{}{}
	s.mu.Unlock()
	for sub := range subs {
		sub.stop()
	}
	var errs []error
	for sub := range subs {
		<-sub.done
		errs = append(errs, sub.err)
	}
	return errors.Join(errs...)
}

func (s *wmMemorySubscription) handle(ctx context.Context, e *eventstream.Event) error {
	if !s.enter() {
		return errLeaving
	}
	defer s.handlers.Done()
	msg, err := decodeMessage(e)
	if err != nil {
		return eventstream.Permanent(err)
	}
	mctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	msg.SetContext(mctx)
	select {
	case s.out <- msg:
	case <-s.ctx.Done():
		return errLeaving
	}
	select {
	case <-msg.Acked():
		return nil
	case <-msg.Nacked():
		return errNacked
	case <-s.ctx.Done():
		return errLeaving
	}
}

func (s *wmMemorySubscription) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.handlers.Add(1)
	return true
}

// close leaves the group (Off hands what the subscription holds to the
// group, or keeps it for the group's return), then closes the channel once
// no handler can send on it.
func (s *wmMemorySubscription) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if err := s.bus.Off(s.sub); !errors.Is(err, eventstream.ErrClosed) { // a closed bus ended it already
		s.err = err
	}
	s.handlers.Wait()
	close(s.out)
	close(s.done)
}

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
