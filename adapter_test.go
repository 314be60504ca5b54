package eventstream_test

import (
	"errors"
	"testing"

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
