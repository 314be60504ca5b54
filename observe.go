package eventstream

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"libx.net/eventstream/history"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/middleware"
	"libx.net/eventstream/telemetry"
)

// WithStatsReader lets GetStats read the metrics of a MeterProvider you
// built yourself: create the reader with history.NewStatsReader, add it to
// your provider (sdkmetric.WithReader(r.Reader())), and pass it here. Without
// your own provider the bus builds one with a reader and needs nothing.
func WithStatsReader(r *history.StatsReader) Option {
	return optionFunc(func(o *options) { o.statsReader = r })
}

// observer is the bus's telemetry: the providers it was given or built, and
// the history and stats views over them.
type observer struct {
	tel      *telemetry.Telemetry
	recorder *history.Recorder    // nil: history off
	stats    *history.StatsReader // nil: stats off
	closers  []func(context.Context) error
}

func newObserver(b *bus) (*observer, error) {
	o := &observer{}
	mem := b.cfg.Memory

	tp := b.opts.tracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mem.EnableHistory {
		o.recorder = history.NewRecorder(mem.MaxHistorySize)
		switch p := tp.(type) {
		case *sdktrace.TracerProvider:
			p.RegisterSpanProcessor(o.recorder)
			o.closers = append(o.closers, func(context.Context) error {
				p.UnregisterSpanProcessor(o.recorder)
				return nil
			})
		default:
			if b.opts.tracerProvider != nil {
				// A provider that is not the SDK's cannot take a span
				// processor; history would need a second provider.
				b.logger.Warn("eventstream: history is off: the TracerProvider given is not an SDK provider")
				o.recorder = nil
				break
			}
			// Nobody set up tracing: build a provider that feeds history.
			own := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.recorder))
			tp = own
			o.closers = append(o.closers, own.Shutdown)
		}
	}

	mp := b.opts.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if mem.EnableMetrics {
		o.stats = b.opts.statsReader
		_, isSDK := mp.(*sdkmetric.MeterProvider)
		switch {
		case o.stats != nil:
		case b.opts.meterProvider == nil && !isSDK:
			// Nobody set up metrics: build a provider that feeds GetStats.
			o.stats = history.NewStatsReader()
			own := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.stats.Reader()))
			mp = own
			o.closers = append(o.closers, own.Shutdown)
		default:
			// An SDK provider cannot take a reader after it was built.
			b.logger.Info("eventstream: GetStats is empty: pass WithStatsReader with a reader added to your MeterProvider")
		}
	}

	topts := []telemetry.Option{telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(mp)}
	if b.opts.propagator != nil {
		topts = append(topts, telemetry.WithPropagator(b.opts.propagator))
	}
	if b.opts.linksOnly {
		topts = append(topts, telemetry.WithLinksOnly())
	}
	if sa, ok := b.tr.(transport.ServerAddresser); ok { // Kafka: server.address on send spans
		host, port := sa.ServerAddress()
		topts = append(topts, telemetry.WithServerAddress(host, port))
	}
	tel, err := telemetry.New(topts...)
	if err != nil {
		_ = o.close()
		return nil, &ConfigError{Field: "telemetry", Reason: err.Error()}
	}
	o.tel = tel
	o.closers = append(o.closers, func(context.Context) error { return tel.Close() })
	unregister := tel.ObservePool(b.system, b.sched.Stats)
	o.closers = append(o.closers, func(context.Context) error { unregister(); return nil })
	if lr, ok := b.tr.(transport.LagReporter); ok {
		unregister := tel.ObserveLag(lr.ReportLag)
		o.closers = append(o.closers, func(context.Context) error { unregister(); return nil })
	}
	return o, nil
}

// observeSubscription reports the subscription's queue depth until it ends.
func (o *observer) observeSubscription(b *bus, s *subscription) {
	qd, ok := b.tr.(transport.QueueDepther)
	if !ok || s.tel == nil {
		return
	}
	ts := s.ts
	s.addRelease(s.tel.ObserveQueueDepth(func() int64 { return qd.QueueDepth(ts) }))
}

func (o *observer) emitMiddleware(system string, b *bus) []Middleware {
	return []Middleware{
		middleware.EmitTracing(o.tel, system),
		middleware.EmitMetrics(o.tel, system),
		middleware.Logging(b.logger),
	}
}

// close flushes and shuts down what the observer built, last built first.
func (o *observer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for i := len(o.closers) - 1; i >= 0; i-- {
		errs = append(errs, o.closers[i](ctx))
	}
	o.closers = nil
	return errors.Join(errs...)
}

// GetStats implements MemoryEventBus.
func (b *bus) GetStats() Stats {
	if b.obs == nil || b.obs.stats == nil {
		return Stats{}
	}
	s, err := b.obs.stats.Collect(context.Background())
	if err != nil {
		b.logger.Debug("eventstream: stats unavailable", "error", err)
	}
	return s
}

// GetHistory implements MemoryEventBus.
func (b *bus) GetHistory(n int) []HistoryEntry {
	if b.obs == nil || b.obs.recorder == nil {
		return nil
	}
	return b.obs.recorder.Recent(n)
}

// Topology lists topics, their consumer groups and the groups' subscriptions.
func (b *bus) Topology() history.Topology {
	b.mu.Lock()
	byTopic := map[string]map[string][]string{}
	for _, s := range b.subs {
		if byTopic[s.topic] == nil {
			byTopic[s.topic] = map[string][]string{}
		}
		byTopic[s.topic][s.group] = append(byTopic[s.topic][s.group], s.id)
	}
	b.mu.Unlock()
	var t history.Topology
	for topic, groups := range byTopic {
		node := history.TopicNode{Name: topic}
		for g, subs := range groups {
			sort.Strings(subs)
			node.Groups = append(node.Groups, history.GroupNode{Name: g, Subscriptions: subs})
		}
		sort.Slice(node.Groups, func(i, j int) bool { return node.Groups[i].Name < node.Groups[j].Name })
		t.Topics = append(t.Topics, node)
	}
	sort.Slice(t.Topics, func(i, j int) bool { return t.Topics[i].Name < t.Topics[j].Name })
	return t
}

// DebugHandler serves the bus's recent events, stats and topology as JSON
// and as a small HTML page, for mounting at a path such as
// /debug/eventstream (with http.StripPrefix). It answers 404 for a bus
// that is not one of this package's.
func DebugHandler(eb EventBus) http.Handler {
	b, ok := eb.(*bus)
	if !ok {
		return http.NotFoundHandler()
	}
	return history.Handler(debugSource{b})
}

type debugSource struct{ b *bus }

func (d debugSource) Recent(n int) []history.Entry { return d.b.GetHistory(n) }
func (d debugSource) Stats(ctx context.Context) (history.Stats, error) {
	if d.b.obs == nil || d.b.obs.stats == nil {
		return history.Stats{}, nil
	}
	return d.b.obs.stats.Collect(ctx)
}
func (d debugSource) Topology() history.Topology { return d.b.Topology() }
