package eventstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

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

// An async Emit through an MQAdapter gets its callback whatever the
// adapter's System name, and the adapter's context reaches the handler.
func TestMQAdapterAsyncAndContext(t *testing.T) {
	a := newQueueAdapter(t)
	a.system = "kafka"
	cfg := &eventstream.Config{Mode: eventstream.ModeDistributed, MQ: a}
	b := quietBus(t, cfg)
	defer b.Close()
	gotCtx := make(chan any, 1)
	b.On("mq.ctx", func(ctx context.Context, _ *eventstream.Event) error {
		gotCtx <- ctx.Value(adapterCtxKey{})
		return nil
	})
	done := make(chan error, 1)
	if err := b.Emit(context.Background(), "mq.ctx", 1, eventstream.WithAsync(func(err error) { done <- err })); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the async callback was not called")
	}
	select {
	case v := <-gotCtx:
		if v != "from-adapter" {
			t.Fatalf("handler ctx value = %v, want the adapter's", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered")
	}
}
