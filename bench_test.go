package eventstream_test

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

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

// BenchmarkMemoryDelivered measures Emit→handler, end to end: the clock
// stops when the handler has seen every event.
func BenchmarkMemoryDelivered(b *testing.B) {
	benchDelivered(b, benchBus(b), nil)
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

// BenchmarkMemoryEmit measures Emit alone, with a subscriber draining.
func BenchmarkMemoryEmit(b *testing.B) { benchEmit(b, "") }

// benchEmit measures Emit to one subscriber per group given ("" is a
// subscription without a group).
func benchEmit(b *testing.B, groups ...string) {
	bus := benchBus(b)
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
func BenchmarkMemoryHeap(b *testing.B) {
	bus := benchBus(b)
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

func benchBus(b *testing.B, opts ...eventstream.Option) eventstream.EventBus {
	b.Helper()
	cfg := eventstream.DefaultConfig()
	cfg.Memory.EnableHistory = false
	cfg.Memory.EnableMetrics = false
	bus, err := eventstream.New(cfg, append([]eventstream.Option{eventstream.WithoutTelemetry(), eventstream.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	return bus
}

// BenchmarkMemoryEmitThreeGroups: one Emit, three consumer groups, as in
// the original README's consumer-group example.
func BenchmarkMemoryEmitThreeGroups(b *testing.B) {
	benchEmit(b, "notification", "points", "analytics")
}
