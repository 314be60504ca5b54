package eventstream_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// queueAdapter is an MQAdapter over an in-process queue — a second,
// memory-mode bus without telemetry — so the conformance suite can prove
// that the bus drives any adapter with the same semantics: the outer bus
// keeps chains, retries, dead letters and telemetry; the queue only moves.
type queueAdapter struct {
	q      eventstream.EventBus
	system string
}

// adapterCtxKey marks the context the adapter hands to the bus.
type adapterCtxKey struct{}

func newQueueAdapter(t *testing.T) *queueAdapter {
	cfg := eventstream.DefaultConfig()
	cfg.Memory.EnableHistory, cfg.Memory.EnableMetrics = false, false
	cfg.Retry = &eventstream.RetryPolicy{} // the outer bus retries
	q, err := eventstream.New(cfg, eventstream.WithoutTelemetry(), eventstream.WithoutDeadLetter(),
		eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return &queueAdapter{q: q, system: "inproc"}
}

func (a *queueAdapter) System() string { return a.system }

// Publish queues the event itself, so its id, time, key, data and headers
// reach the subscribers unchanged; the key also orders the queue.
func (a *queueAdapter) Publish(ctx context.Context, e *eventstream.Event) error {
	return a.q.Emit(ctx, e.Topic, e, eventstream.WithKey(e.Key))
}

func (a *queueAdapter) Subscribe(topic, group string, concurrency int, handle func(context.Context, *eventstream.Event)) (eventstream.MQSubscription, error) {
	sub, err := a.q.On(topic, func(ctx context.Context, queued *eventstream.Event) error {
		handle(context.WithValue(ctx, adapterCtxKey{}, "from-adapter"), queued.Data.(*eventstream.Event))
		return nil
	}, eventstream.WithConsumerGroup(group), eventstream.WithConcurrency(concurrency))
	if err != nil {
		return nil, err
	}
	return queueSub{a.q, sub}, nil
}

func (a *queueAdapter) Close() error { return a.q.Close() }

type queueSub struct {
	q   eventstream.EventBus
	sub eventstream.Subscription
}

func (s queueSub) Stop(context.Context) error { return s.q.Off(s.sub) }

func TestMQAdapterConformance(t *testing.T) {
	eventstreamtest.Run(t, eventstreamtest.Transport{
		New: func(t *testing.T, s eventstreamtest.Setup) eventstream.EventBus {
			cfg := &eventstream.Config{Mode: eventstream.ModeDistributed, MQ: newQueueAdapter(t), ShutdownTimeout: s.ShutdownTimeout}
			b, err := eventstream.New(cfg, s.Options...)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	})
}

func TestMQAdapterValidated(t *testing.T) {
	a := newQueueAdapter(t)
	defer a.Close()
	_, err := eventstream.New(&eventstream.Config{Mode: eventstream.ModeDistributed, MQ: badSystem{a}})
	if !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Fatalf("adapter with an empty System(): %v, want ErrInvalidConfig", err)
	}
}

type badSystem struct{ *queueAdapter }

func (badSystem) System() string { return "" }
