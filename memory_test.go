package eventstream_test

import (
	"testing"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

func memoryTransport(opts ...eventstream.Option) eventstreamtest.Transport {
	return eventstreamtest.Transport{
		Backpressure: true,
		New: func(t *testing.T, s eventstreamtest.Setup) eventstream.EventBus {
			cfg := eventstream.DefaultConfig()
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

func TestMemoryConformance(t *testing.T) {
	eventstreamtest.Run(t, memoryTransport())
}

func TestMemoryConformanceWithoutTelemetry(t *testing.T) {
	eventstreamtest.Run(t, memoryTransport(eventstream.WithoutTelemetry()))
}
