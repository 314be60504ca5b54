package eventstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"libx.net/eventstream"
)

// Cost per topic and per subscription must not grow with how many others
// exist. Compare the sub-benchmarks' ns/op:
//
//	go test -run '^$' -bench 'EmitManyTopics|OnOffAmong' -count=6 .

// BenchmarkEmitManyTopics emits round robin over n distinct topics with
// default telemetry: Emit's cost at 100,000 topics against one. Without
// subscribers it is the cost of the per-topic state (routes, telemetry);
// with one subscriber per topic every Emit also wakes an idle lane's worker
// (with one topic the lane stays busy and drains in batches), which is the
// cost of spreading events thinly, not of the number of topics.
func BenchmarkEmitManyTopics(b *testing.B) {
	for _, c := range []struct {
		n          int
		subscribed bool
	}{{1, false}, {1000, false}, {100000, false}, {1, true}, {1000, true}, {100000, true}} {
		n := c.n
		b.Run(fmt.Sprintf("topics=%d/subscribed=%v", n, c.subscribed), func(b *testing.B) {
			bus, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				b.Fatal(err)
			}
			defer bus.Close()
			topics := make([]string, n)
			for i := range topics {
				topics[i] = fmt.Sprintf("topic.%d", i)
				if !c.subscribed {
					continue
				}
				if _, err := bus.On(topics[i], func(context.Context, *eventstream.Event) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			for i := range topics { // every topic's first Emit is behind us
				_ = bus.Emit(ctx, topics[i], nil)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := bus.Emit(ctx, topics[i%n], nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOnOffAmong subscribes and leaves once per iteration while n other
// subscriptions exist (on n/10 topics).
func BenchmarkOnOffAmong(b *testing.B) {
	for _, n := range []int{0, 1000, 8000} {
		b.Run(fmt.Sprintf("others=%d", n), func(b *testing.B) {
			bus, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				b.Fatal(err)
			}
			defer bus.Close()
			h := func(context.Context, *eventstream.Event) error { return nil }
			for i := range n {
				if _, err := bus.On(fmt.Sprintf("other.%d", i/10), h); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := bus.On("mine", h)
				if err != nil {
					b.Fatal(err)
				}
				if err := bus.Off(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
