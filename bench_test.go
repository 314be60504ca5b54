package eventstream_test

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"libx.net/eventstream"
	"libx.net/eventstream/event"
)

// The baseline: a buffered channel handed from one goroutine to another,
// measured in the same run as the bus so that ratios survive a noisy machine.
func BenchmarkChannelHandoff(b *testing.B) {
	ch := make(chan *eventstream.Event, 1000)
	var wg sync.WaitGroup
	wg.Add(1)
	var n int
	go func() {
		defer wg.Done()
		for range ch {
			n++
		}
	}()
	e := &eventstream.Event{Topic: "bench"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch <- e
	}
	close(ch)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkChannelHandoffNewEvent is the channel hand-off of a freshly
// built event (clock read, id, allocation): the floor under any Emit that
// creates an event, so the bus's own overhead is the difference.
func BenchmarkChannelHandoffNewEvent(b *testing.B) {
	ch := make(chan *eventstream.Event, 1000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range ch {
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch <- event.New("bench", nil)
	}
	close(ch)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryDelivered measures Emit→handler, end to end, with
// telemetry absent (WithoutTelemetry): the clock stops when the handler has
// seen every event.
func BenchmarkMemoryDelivered(b *testing.B) {
	benchDelivered(b, benchBus(b), nil)
}

// BenchmarkMemoryDeliveredDefault is the bus as DefaultConfig() makes it,
// with OpenTelemetry not set up: history and stats on, fed by the bus's own
// measurements.
func BenchmarkMemoryDeliveredDefault(b *testing.B) {
	benchDelivered(b, defaultBus(b), nil)
}

// BenchmarkMemoryDeliveredNoop: no-op providers passed in, history and
// stats off — telemetry present but nobody looking.
func BenchmarkMemoryDeliveredNoop(b *testing.B) {
	benchDelivered(b, noopBus(b), nil)
}

// benchDelivered emits b.N events to one subscriber and stops the clock
// when the handler has seen them all; before runs just before the clock
// starts.
func benchDelivered(b *testing.B, bus eventstream.EventBus, before func()) {
	b.Helper()
	var got atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	if _, err := bus.On("bench", func(ctx context.Context, e *eventstream.Event) error {
		if got.Add(1) == target {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if before != nil {
		before()
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := bus.Emit(ctx, "bench", i); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryEmit measures Emit alone, telemetry absent, with a
// subscriber draining.
func BenchmarkMemoryEmit(b *testing.B) { benchEmit(b, benchBus(b), "") }

// BenchmarkMemoryEmitDefault is Emit on the bus DefaultConfig() makes, with
// OpenTelemetry not set up.
func BenchmarkMemoryEmitDefault(b *testing.B) { benchEmit(b, defaultBus(b), "") }

// BenchmarkMemoryEmitNoop is Emit with no-op providers, history and stats
// off.
func BenchmarkMemoryEmitNoop(b *testing.B) { benchEmit(b, noopBus(b), "") }

// benchEmit measures Emit to one subscriber per group given ("" is a
// subscription without a group).
func benchEmit(b *testing.B, bus eventstream.EventBus, groups ...string) {
	for _, g := range groups {
		var opts []eventstream.SubscribeOption
		if g != "" {
			opts = append(opts, eventstream.WithConsumerGroup(g))
		}
		if _, err := bus.On("bench", func(ctx context.Context, e *eventstream.Event) error { return nil }, opts...); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := bus.Emit(ctx, "bench", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryHeap reports the live heap before and after b.N events;
// run with -benchtime=10000000x for the README's figure.
func BenchmarkMemoryHeap(b *testing.B) { benchHeap(b, benchBus(b)) }

// BenchmarkMemoryHeapDefault is BenchmarkMemoryHeap on DefaultConfig()'s
// bus: history and stats on, whose ring and counters are allocated up
// front and hold copies, never events.
func BenchmarkMemoryHeapDefault(b *testing.B) { benchHeap(b, defaultBus(b)) }

func benchHeap(b *testing.B, bus eventstream.EventBus) {
	var before uint64
	benchDelivered(b, bus, func() {
		for i := 0; i < 10000; i++ { // warm up: queues reach their working size
			_ = bus.Emit(context.Background(), "warm", i)
		}
		before = liveHeap()
	})
	after := liveHeap()
	b.ReportMetric(float64(before)/1024, "heap-before-KiB")
	b.ReportMetric(float64(after)/1024, "heap-after-KiB")
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchBus is a bus with telemetry absent: the baseline the telemetry's
// cost is measured against.
func benchBus(b *testing.B, opts ...eventstream.Option) eventstream.EventBus {
	b.Helper()
	cfg := eventstream.DefaultConfig()
	cfg.Memory.DisableHistory = true
	cfg.Memory.DisableMetrics = true
	return newBenchBus(b, cfg, append([]eventstream.Option{eventstream.WithoutTelemetry()}, opts...)...)
}

// defaultBus is DefaultConfig()'s bus; the otel globals are not set in
// this package's tests, so they are the no-op placeholders.
func defaultBus(b *testing.B) eventstream.EventBus {
	return newBenchBus(b, eventstream.DefaultConfig())
}

// noopBus has telemetry on, over no-op providers, with history and stats
// off.
func noopBus(b *testing.B) eventstream.EventBus {
	cfg := eventstream.DefaultConfig()
	cfg.Memory.DisableHistory = true
	cfg.Memory.DisableMetrics = true
	return newBenchBus(b, cfg, eventstream.WithTracerProvider(tracenoop.NewTracerProvider()),
		eventstream.WithMeterProvider(metricnoop.NewMeterProvider()))
}

func newBenchBus(b *testing.B, cfg *eventstream.Config, opts ...eventstream.Option) eventstream.EventBus {
	b.Helper()
	bus, err := eventstream.New(cfg, append([]eventstream.Option{eventstream.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	return bus
}

// BenchmarkMemoryEmitThreeGroups: one Emit, three consumer groups, as in
// the README's consumer-group example.
func BenchmarkMemoryEmitThreeGroups(b *testing.B) {
	benchEmit(b, benchBus(b), "notification", "points", "analytics")
}
