package eventstream

import (
	"context"
	"net/http"
	"sort"

	"libx.net/eventstream/history"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/middleware"
)

// observer is the bus's telemetry: one measurement point per event that
// feeds the spans and metrics of the providers in effect, and the history
// and stats the bus reports itself, so that they never disagree. It needs
// no SDK: with none set up, history and stats still work and nothing else
// is done per event.
type observer struct {
	tel *itel.Telemetry
	// gauges unregisters the callbacks of the gauges (pool, lag), which
	// describe a running bus. The counters stay readable after Close.
	gauges []func()
}

func newObserver(b *bus) (*observer, error) {
	mem := b.cfg.Memory
	cfg := itel.Config{
		TracerProvider: b.opts.tracerProvider,
		MeterProvider:  b.opts.meterProvider,
		Propagator:     b.opts.propagator,
		LinksOnly:      b.opts.linksOnly,
		System:         b.system,
		InProcess:      b.cfg.Mode == ModeMemory,
		Stats:          mem.EnableMetrics,
		Goexit:         &GoexitError{},
	}
	if mem.EnableHistory {
		cfg.History = mem.MaxHistorySize
	}
	if sa, ok := b.tr.(transport.ServerAddresser); ok { // Kafka: server.address on send spans
		cfg.ServerAddress, cfg.ServerPort = sa.ServerAddress()
	}
	tel, err := itel.New(cfg)
	if err != nil {
		return nil, &ConfigError{Field: "telemetry", Reason: err.Error()}
	}
	o := &observer{tel: tel}
	o.gauges = append(o.gauges, tel.ObservePool(b.sched.Stats))
	if lr, ok := b.tr.(transport.LagReporter); ok {
		o.gauges = append(o.gauges, tel.ObserveLag(lr.ReportLag))
	}
	o.gauges = append(o.gauges, tel.ObserveCircuits(b.circuitStates))
	if ar, ok := b.tr.(transport.AgeReporter); ok {
		o.gauges = append(o.gauges, tel.ObserveTimeLag(ar.ReportAge))
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

// emitMiddleware is the bus's part of the emit chain: the measurement point
// (span, metrics, history), then logging.
func (o *observer) emitMiddleware(b *bus) []Middleware {
	return []Middleware{o.tel.Emit(), middleware.Logging(b.logger)}
}

// close unregisters the gauges and stops the series sampler. There is
// nothing to flush: the providers are the caller's.
func (o *observer) close() {
	o.tel.StopSeries()
	for _, unregister := range o.gauges {
		unregister()
	}
	o.gauges = nil
}

// GetStats implements MemoryEventBus. It reads the bus's own counters and
// histograms, also after Close.
func (b *bus) GetStats() Stats {
	if b.obs == nil {
		return Stats{}
	}
	return b.obs.tel.Stats()
}

// GetHistory implements MemoryEventBus: up to n of the most recent send and
// process operations, newest first, also after Close.
func (b *bus) GetHistory(n int) []HistoryEntry {
	if b.obs == nil {
		return nil
	}
	return b.obs.tel.Recent(n)
}

// Topology lists topics, their consumer groups and the groups' subscriptions.
func (b *bus) Topology() history.Topology {
	b.mu.Lock()
	byTopic := map[string]map[string][]string{}
	members := map[[2]string][]*subscription{}
	for _, s := range b.subs {
		if byTopic[s.topic] == nil {
			byTopic[s.topic] = map[string][]string{}
		}
		byTopic[s.topic][s.group] = append(byTopic[s.topic][s.group], s.id)
		members[[2]string{s.topic, s.group}] = append(members[[2]string{s.topic, s.group}], s)
	}
	b.mu.Unlock()
	var t history.Topology
	for topic, groups := range byTopic {
		node := history.TopicNode{Name: topic}
		for g, subs := range groups {
			sort.Strings(subs)
			node.Groups = append(node.Groups, history.GroupNode{Name: g, Subscriptions: subs,
				Circuit: circuitName(members[[2]string{topic, g}])})
		}
		sort.Slice(node.Groups, func(i, j int) bool { return node.Groups[i].Name < node.Groups[j].Name })
		t.Topics = append(t.Topics, node)
	}
	sort.Slice(t.Topics, func(i, j int) bool { return t.Topics[i].Name < t.Topics[j].Name })
	return t
}

// DebugHandler serves the bus's recent events (newest first), stats and
// topology as JSON and as a small HTML page, for mounting at a path such as
// /debug/eventstream (with http.StripPrefix); see history.Handler for its
// paths and history.WithTraceURL for links to a trace viewer. It keeps
// working after Close, showing what the bus did. It answers 404 for a bus
// that is not one of this package's.
func DebugHandler(eb EventBus, opts ...history.HandlerOption) http.Handler {
	b, ok := eb.(*bus)
	if !ok {
		return http.NotFoundHandler()
	}
	return history.Handler(debugSource{b}, opts...)
}

type debugSource struct{ b *bus }

func (d debugSource) Recent(n int) []history.Entry                 { return d.b.GetHistory(n) }
func (d debugSource) Stats(context.Context) (history.Stats, error) { return d.b.GetStats(), nil }
func (d debugSource) Topology() history.Topology                   { return d.b.Topology() }
func (d debugSource) Series() []history.Series {
	if d.b.obs == nil {
		return nil
	}
	return d.b.obs.tel.Series()
}
