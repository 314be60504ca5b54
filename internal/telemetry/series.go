package telemetry

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"libx.net/eventstream/telemetry"
)

// registry holds the series of one Telemetry: one per topic for the emit
// side, one per topic and consumer group for the consume side. Series live
// as long as the Telemetry, as an SDK keeps a counter's series: cumulative
// counts must not vanish when a subscription ends. Their number is bounded
// by the topics emitted to and the groups subscribed.
type registry struct {
	system string
	// sends is read on every Emit: a sync.Map keeps that lock-free.
	sends sync.Map // topic → *sendSeries

	mu     sync.Mutex // guards groups and the creation of series
	groups map[groupKey]*groupSeries
}

type groupKey struct{ topic, group string }

// labels name the operations of history entries; immutable.
type labels struct{ topic, group, subscription string }

// sendSeries is the emit side of one topic.
type sendSeries struct {
	labels labels
	sent   atomic.Int64 // successful sends
	failed atomic.Int64 // failed sends, all error types
	errs   errorSeries  // failed sends by error.type

	spanName  string
	spanAttrs []attribute.KeyValue // static send span attributes
	kvs       []attribute.KeyValue // metric attributes: system, operation name, destination
	obs       metric.ObserveOption
	rec       []metric.RecordOption
}

// groupSeries is the consume side of one topic and consumer group, shared by
// the group's subscriptions.
type groupSeries struct {
	key       groupKey
	consumed  atomic.Int64
	inFlight  atomic.Int64
	blocked   atomic.Int64 // dead letters not written yet (also in flight)
	retried   atomic.Int64
	requeued  atomic.Int64
	skewed    atomic.Int64 // deliveries whose emit time was ahead of the clock
	succeeded atomic.Int64 // attempts, kept for GetStats
	failed    atomic.Int64
	dead      errorSeries // dead letters by error.type
	procErrs  errorSeries // process.duration attribute sets by error.type
	process   histogram   // handler durations, for GetStats
	delivery  histogram   // emit → processing start, for GetStats

	procKVs []attribute.KeyValue // system, operation name, destination, group
	baseKVs []attribute.KeyValue // system, destination, group
	procObs metric.ObserveOption
	procRec []metric.RecordOption
	baseObs metric.ObserveOption
	baseRec []metric.RecordOption
}

// send returns the series of topic, created on first use.
func (r *registry) send(topic string) *sendSeries {
	if s, ok := r.sends.Load(topic); ok {
		return s.(*sendSeries)
	}
	s := &sendSeries{
		labels:   labels{topic: topic},
		spanName: telemetry.OperationSend + " " + topic,
		spanAttrs: []attribute.KeyValue{
			semconv.MessagingSystemKey.String(r.system),
			semconv.MessagingOperationTypeKey.String(telemetry.OperationSend),
			semconv.MessagingOperationName(telemetry.OperationSend),
			semconv.MessagingDestinationName(topic),
		},
		kvs: []attribute.KeyValue{
			semconv.MessagingSystemKey.String(r.system),
			semconv.MessagingOperationName(telemetry.OperationSend),
			semconv.MessagingDestinationName(topic),
		},
	}
	set := metric.WithAttributeSet(attribute.NewSet(s.kvs...))
	s.obs, s.rec = set, []metric.RecordOption{set}
	actual, _ := r.sends.LoadOrStore(topic, s)
	return actual.(*sendSeries)
}

// group returns the series of topic and group, created on first use.
func (r *registry) group(topic, group string) *groupSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.groupLocked(topic, group)
}

func (r *registry) groupLocked(topic, group string) *groupSeries {
	k := groupKey{topic, group}
	if g, ok := r.groups[k]; ok {
		return g
	}
	g := &groupSeries{key: k}
	g.procKVs = []attribute.KeyValue{
		semconv.MessagingSystemKey.String(r.system),
		semconv.MessagingOperationName(telemetry.OperationProcess),
		semconv.MessagingDestinationName(topic),
		semconv.MessagingConsumerGroupName(group),
	}
	g.baseKVs = []attribute.KeyValue{
		semconv.MessagingSystemKey.String(r.system),
		semconv.MessagingDestinationName(topic),
		semconv.MessagingConsumerGroupName(group),
	}
	proc, base := metric.WithAttributeSet(attribute.NewSet(g.procKVs...)), metric.WithAttributeSet(attribute.NewSet(g.baseKVs...))
	g.procObs, g.procRec = proc, []metric.RecordOption{proc}
	g.baseObs, g.baseRec = base, []metric.RecordOption{base}
	if r.groups == nil {
		r.groups = make(map[groupKey]*groupSeries)
	}
	r.groups[k] = g
	return g
}

// forget drops the series of a group that ends with its only subscription
// (a subscription without a group), unless deliveries are still under way,
// so that subscribing and leaving in a loop does not grow memory. What it
// counted moves to the topic's EndedPrivateGroups series: totals never go
// down.
func (r *registry) forget(g *groupSeries) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groups[g.key] != g || g.inFlight.Load() != 0 {
		return
	}
	delete(r.groups, g.key)
	ended := r.groupLocked(g.key.topic, telemetry.EndedPrivateGroups)
	ended.consumed.Add(g.consumed.Load())
	ended.retried.Add(g.retried.Load())
	ended.requeued.Add(g.requeued.Load())
	ended.skewed.Add(g.skewed.Load())
	ended.succeeded.Add(g.succeeded.Load())
	ended.failed.Add(g.failed.Load())
	g.dead.each(func(errType string, n int64) { ended.dead.get(errType, ended.baseKVs).n.Add(n) })
	ps, ds := g.process.snapshot(), g.delivery.snapshot()
	ended.process.add(&ps)
	ended.delivery.add(&ds)
}

// observe is the callback of the observable counters. It reads atomics
// under the registry's lock, which the event path never takes.
func (r *registry) observe(in instruments) metric.Callback {
	return func(_ context.Context, o metric.Observer) error {
		r.sends.Range(func(_, v any) bool {
			s := v.(*sendSeries)
			if n := s.sent.Load(); n != 0 {
				o.ObserveInt64(in.sentMessages, n, s.obs)
			}
			s.errs.eachSet(func(n int64, set metric.ObserveOption) { o.ObserveInt64(in.sentMessages, n, set) })
			return true
		})
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, g := range r.groups {
			// A series appears with its first delivery, as a synchronous
			// counter's does with its first measurement.
			n, f := g.consumed.Load(), g.inFlight.Load()
			if n != 0 {
				o.ObserveInt64(in.consumedMessages, n, g.procObs)
			}
			if n != 0 || f != 0 {
				o.ObserveInt64(in.inFlight, f, g.baseObs)
				o.ObserveInt64(in.dlBlocked, g.blocked.Load(), g.baseObs)
			}
			if v := g.retried.Load(); v != 0 {
				o.ObserveInt64(in.retries, v, g.baseObs)
			}
			if v := g.requeued.Load(); v != 0 {
				o.ObserveInt64(in.requeues, v, g.baseObs)
			}
			if v := g.skewed.Load(); v != 0 {
				o.ObserveInt64(in.clockSkew, v, g.baseObs)
			}
			g.dead.eachSet(func(n int64, set metric.ObserveOption) { o.ObserveInt64(in.deadLetters, n, set) })
		}
		return nil
	}
}

// errorSeries holds, per error.type, a count and the attribute set of a
// base set plus error.type. Error types are few (Go type names, stable
// codes); past maxErrorTypes, new ones are counted as _OTHER so that a
// source of ever-new types cannot grow memory without bound.
type errorSeries struct {
	m sync.Map // error type → *errorEntry
	n atomic.Int32
}

const maxErrorTypes = 64

type errorEntry struct {
	n   atomic.Int64
	obs metric.ObserveOption
	rec []metric.RecordOption
}

func (c *errorSeries) get(errType string, base []attribute.KeyValue) *errorEntry {
	if v, ok := c.m.Load(errType); ok {
		return v.(*errorEntry)
	}
	if c.n.Load() >= maxErrorTypes {
		errType = semconv.ErrorTypeOther.Value.AsString()
		if v, ok := c.m.Load(errType); ok {
			return v.(*errorEntry)
		}
	}
	kvs := append(base[:len(base):len(base)], semconv.ErrorTypeKey.String(errType))
	set := metric.WithAttributeSet(attribute.NewSet(kvs...))
	v, loaded := c.m.LoadOrStore(errType, &errorEntry{obs: set, rec: []metric.RecordOption{set}})
	if !loaded {
		c.n.Add(1)
	}
	return v.(*errorEntry)
}

func (c *errorSeries) eachSet(f func(n int64, set metric.ObserveOption)) {
	c.m.Range(func(_, v any) bool {
		e := v.(*errorEntry)
		if n := e.n.Load(); n != 0 {
			f(n, e.obs)
		}
		return true
	})
}

func (c *errorSeries) each(f func(errType string, n int64)) {
	c.m.Range(func(k, v any) bool {
		f(k.(string), v.(*errorEntry).n.Load())
		return true
	})
}

func (c *errorSeries) total() (n int64) {
	c.each(func(_ string, v int64) { n += v })
	return n
}
