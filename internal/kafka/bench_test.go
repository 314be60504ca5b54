package kafka

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/transport"
)

// The producing goroutine's cost of an asynchronous Publish against
// franz-go's Produce of the same record (the difference is the transport's
// own: encoding, room, the pool), on an in-process cluster; the clock
// stops once every promise ran.
func BenchmarkPublish(b *testing.B) {
	// 100 bytes of JSON, as the root package's throughput benchmarks.
	payload := struct {
		N   int    `json:"n"`
		Pad string `json:"pad"`
	}{1234567, strings.Repeat("x", 78)}
	for _, format := range []Format{FormatCloudEvents, FormatCompact} {
		name := map[Format]string{FormatCloudEvents: "CloudEvents", FormatCompact: "Compact"}[format]
		b.Run(name, func(b *testing.B) {
			v := newEnv(b, 4)
			tr := v.transport(func(c *Config, _ *transport.Host) { c.Format = format })
			e := event.New("bench", payload)
			if err := tr.Publish(context.Background(), e, transport.PublishOptions{}); err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			done := func(err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			}
			opts := transport.PublishOptions{Done: done}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				wg.Add(1)
				if err := tr.Publish(context.Background(), e, opts); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
		})
	}
	b.Run("franz-go", func(b *testing.B) {
		v := newEnv(b, 4)
		tr := v.transport(nil)
		e := event.New("bench", payload)
		if err := tr.Publish(context.Background(), e, transport.PublishOptions{}); err != nil {
			b.Fatal(err) // creates the topic
		}
		o := newOutRecord()
		if err := tr.codec.encode(o, e); err != nil {
			b.Fatal(err)
		}
		cl := v.client(kgo.ProducerLinger(0))
		var wg sync.WaitGroup
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			wg.Add(1)
			r := &kgo.Record{Topic: "bench", Value: o.rec.Value, Headers: o.rec.Headers}
			cl.Produce(context.Background(), r, promise)
		}
		wg.Wait()
	})
}
