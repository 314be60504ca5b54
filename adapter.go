package eventstream

import (
	"context"
	"sync"
	"sync/atomic"
)

// MQAdapter is the message queue under distributed mode — the original
// README's Config.MQ. With Config.MQ nil the bus uses its own franz-go
// implementation, configured by Config.Kafka; set Config.MQ to run the bus
// over another queue. An adapter only moves events: the bus keeps
// validation, the middleware chains, retries, dead letters and telemetry,
// so every adapter gets them alike.
type MQAdapter interface {
	// System names the queue for telemetry (messaging.system), in lower
	// case, e.g. "rabbitmq".
	System() string
	// Publish stores e and returns once the queue has acknowledged it.
	// The event's ID, Key, Time, Data and Headers must reach subscribers.
	Publish(ctx context.Context, e *Event) error
	// Subscribe joins consumer group on topic and returns once the
	// subscription is live: every event published afterwards reaches the
	// group. Every group gets every event; one member of a group gets it.
	// The adapter calls handle for each event, at most concurrency at a
	// time, events with the same key one at a time and in order; handle
	// returns when the bus is done with the event (handled, or
	// dead-lettered), and only then may the adapter acknowledge it.
	Subscribe(topic, group string, concurrency int, handle func(ctx context.Context, e *Event)) (MQSubscription, error)
	// Close releases the adapter; the bus calls it after stopping every
	// subscription.
	Close() error
}

// MQSubscription is a live subscription of an MQAdapter.
type MQSubscription interface {
	// Stop stops fetching, waits until the handle calls in flight have
	// returned (or ctx is done), acknowledges what finished and leaves the
	// group.
	Stop(ctx context.Context) error
}

// adapterTransport drives an MQAdapter as the bus's transport.
type adapterTransport struct {
	bus *bus
	mq  MQAdapter

	mu       sync.Mutex
	subs     map[*subscription]MQSubscription
	inFlight atomic.Int64
}

func newAdapterTransport(b *bus, mq MQAdapter) *adapterTransport {
	return &adapterTransport{bus: b, mq: mq, subs: map[*subscription]MQSubscription{}}
}

func (t *adapterTransport) system() string { return t.mq.System() }

func (t *adapterTransport) publish(ctx context.Context, e *Event) error {
	return t.mq.Publish(ctx, e)
}

func (t *adapterTransport) subscribe(s *subscription) error {
	ms, err := t.mq.Subscribe(s.topic, s.group, s.concurrency, func(ctx context.Context, e *Event) {
		t.inFlight.Add(1)
		defer t.inFlight.Add(-1)
		s.deliver(t.bus.baseCtx, e)
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.subs[s] = ms
	t.mu.Unlock()
	return nil
}

func (t *adapterTransport) unsubscribe(s *subscription) error {
	t.mu.Lock()
	ms := t.subs[s]
	delete(t.subs, s)
	t.mu.Unlock()
	if ms == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.bus.cfg.ShutdownTimeout)
	defer cancel()
	return ms.Stop(ctx)
}

// drain stops every subscription: what the queue acknowledged stays in the
// queue, so accepted events are those in flight.
func (t *adapterTransport) drain(ctx context.Context) int {
	t.mu.Lock()
	subs := t.subs
	t.subs = map[*subscription]MQSubscription{}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for s, ms := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ms.Stop(ctx); err != nil {
				t.bus.logger.Warn("eventstream: stopping a subscription", "topic", s.topic, "group", s.group, "error", err)
			}
		}()
	}
	wg.Wait()
	return int(t.inFlight.Load())
}

func (t *adapterTransport) close() error { return t.mq.Close() }
