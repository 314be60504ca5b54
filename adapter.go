package eventstream

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"libx.net/eventstream/internal/transport"
)

// MQAdapter is the message queue under distributed mode, set in Config.MQ.
// With Config.MQ nil the bus uses its own franz-go
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
	h  transport.Host
	mq MQAdapter

	mu       sync.Mutex
	subs     map[*transport.Sub]MQSubscription
	inFlight atomic.Int64
	closing  atomic.Bool
}

func newAdapterTransport(h transport.Host, mq MQAdapter) *adapterTransport {
	return &adapterTransport{h: h, mq: mq, subs: map[*transport.Sub]MQSubscription{}}
}

func (t *adapterTransport) System() string { return t.mq.System() }

// Publish implements transport.Transport. MQAdapter.Publish is synchronous,
// so an asynchronous Emit's done is called once it returned.
func (t *adapterTransport) Publish(ctx context.Context, e *Event, o transport.PublishOptions) error {
	if t.closing.Load() {
		return transport.ErrClosed
	}
	if err := t.mq.Publish(ctx, e); err != nil {
		return &MQError{Op: "publish", Topic: e.Topic, Err: err}
	}
	if o.Done != nil {
		o.Done(nil)
	}
	return nil
}

func (t *adapterTransport) Subscribe(s *transport.Sub) error {
	if t.closing.Load() {
		return transport.ErrClosed
	}
	ms, err := t.mq.Subscribe(s.Topic, s.Group, s.Concurrency, func(ctx context.Context, e *Event) {
		t.inFlight.Add(1)
		defer t.inFlight.Add(-1)
		// The adapter's context (its values, its cancellation) reaches the
		// handler; so does the bus's shutdown.
		hctx, cancel := context.WithCancel(context.WithValue(ctx, handlerKey{}, true))
		stop := context.AfterFunc(t.h.BaseCtx, cancel)
		defer func() { stop(); cancel() }()
		t.deliver(hctx, s, e)
	})
	if err != nil {
		return &MQError{Op: "subscribe", Topic: s.Topic, Err: err}
	}
	t.mu.Lock()
	t.subs[s] = ms
	t.mu.Unlock()
	return nil
}

// deliver delivers e until the bus is done with it. An adapter calls handle
// on goroutines of its own, not the bus's workers, and acknowledges once
// handle returns: a retry's backoff waits here, where it holds nothing of
// the bus. At shutdown the wait ends and e stays unacknowledged.
func (t *adapterTransport) deliver(ctx context.Context, s *transport.Sub, e *Event) {
	err := s.Deliver(ctx, e, nil)
	for {
		again, ok := err.(*transport.Again)
		if !ok {
			return
		}
		if !sleepCtx(ctx, again.Delay) {
			again.Abandon()
			return
		}
		e = again.NextEvent(e)
		err = s.Deliver(again.Next(ctx), e, nil)
	}
}

func (t *adapterTransport) Unsubscribe(s *transport.Sub) error {
	if s.Left != nil {
		defer s.Left() // Stop returned: the adapter delivers no more
	}
	t.mu.Lock()
	ms := t.subs[s]
	delete(t.subs, s)
	t.mu.Unlock()
	if ms == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.h.ShutdownTimeout)
	defer cancel()
	if err := ms.Stop(ctx); err != nil {
		return &MQError{Op: "stop subscription", Topic: s.Topic, Err: err}
	}
	return nil
}

// Drain stops every subscription: what the queue acknowledged stays in the
// queue, so accepted events are those in flight.
func (t *adapterTransport) Drain(ctx context.Context) int {
	t.mu.Lock()
	subs := t.subs
	t.subs = map[*transport.Sub]MQSubscription{}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for s, ms := range subs {
		wg.Go(func() {
			if err := ms.Stop(ctx); err != nil {
				t.h.Logger.Warn("eventstream: stopping a subscription", "topic", s.Topic, "group", s.Group, "error", err)
			}
		})
	}
	wg.Wait()
	t.closing.Store(true)
	return int(t.inFlight.Load())
}

func (t *adapterTransport) Close(context.Context) error {
	t.closing.Store(true)
	if err := t.mq.Close(); err != nil {
		return &MQError{Op: "close", Err: err}
	}
	return nil
}

// MQError reports an MQAdapter operation that failed; it wraps ErrMQ and
// the adapter's error.
type MQError struct {
	Op    string
	Topic string
	Err   error
}

func (e *MQError) Error() string {
	if e.Topic != "" {
		return "eventstream: mq: " + e.Op + " (topic " + strconv.Quote(e.Topic) + "): " + e.Err.Error()
	}
	return "eventstream: mq: " + e.Op + ": " + e.Err.Error()
}

func (e *MQError) Unwrap() []error { return []error{ErrMQ, e.Err} }
