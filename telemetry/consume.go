package telemetry

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// consumeCounters are the per-delivery counters of one consume attribute set
// (system, topic, group): messaging.client.consumed.messages and
// eventstream.in_flight. The delivery path moves them with atomic adds; one
// callback per Telemetry reports them at collection time. Subscriptions with
// the same set share one consumeCounters, so the reported series are what the
// SDK's synchronous instruments would have aggregated.
type consumeCounters struct {
	consumed atomic.Int64
	inFlight atomic.Int64

	consumedOpt metric.ObserveOption // system, operation name, destination, group
	inFlightOpt metric.ObserveOption // system, destination, group

	// 128 bytes in all: the allocator's 128-byte size class keeps each
	// object 128-aligned, so two sets' hot counters never share a cache line.
	_ [128 - 16 - 32]byte
}

type consumeKey struct{ system, topic, group string }

// consumeRegistry holds every consumeCounters of a Telemetry. Entries are
// kept for the Telemetry's life, as the SDK keeps a synchronous counter's
// series (cumulative counts must not vanish when a subscription ends);
// their number is bounded by the topic × group pairs subscribed, the same
// bound as the series themselves.
type consumeRegistry struct {
	mu      sync.Mutex
	byKey   map[consumeKey]*consumeCounters
	reg     metric.Registration
	closed  bool
	regOnce sync.Once // registers the callback, outside mu: the SDK calls the callback under its own lock
}

// consumeCounters returns the counters of the given sets, registering the
// callback on first use.
func (t *Telemetry) consumeCounters(key consumeKey, consumed, inFlight attribute.Set) *consumeCounters {
	r := &t.consume
	r.regOnce.Do(func() {
		reg, err := t.meter.RegisterCallback(t.observeConsume, t.inst.ConsumedMessages, t.inst.InFlight)
		if err != nil {
			otel.Handle(err)
			return
		}
		r.mu.Lock()
		closed := r.closed
		if !closed {
			r.reg = reg
		}
		r.mu.Unlock()
		if closed {
			_ = reg.Unregister()
		}
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.byKey[key]; ok {
		return c
	}
	c := &consumeCounters{
		consumedOpt: metric.WithAttributeSet(consumed),
		inFlightOpt: metric.WithAttributeSet(inFlight),
	}
	if r.byKey == nil {
		r.byKey = make(map[consumeKey]*consumeCounters)
	}
	r.byKey[key] = c
	return c
}

// observeConsume reports the consume counters. A set is reported once it has
// counted a delivery (or its in-flight count moved), as a synchronous
// instrument's series appears with its first measurement.
func (t *Telemetry) observeConsume(_ context.Context, o metric.Observer) error {
	r := &t.consume
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.byKey {
		n := c.consumed.Load()
		f := c.inFlight.Load()
		if n != 0 {
			o.ObserveInt64(t.inst.ConsumedMessages, n, c.consumedOpt)
		}
		if n != 0 || f != 0 {
			o.ObserveInt64(t.inst.InFlight, f, c.inFlightOpt)
		}
	}
	return nil
}

// forget drops c (the counters of key) unless in-flight events still
// count on it. A later subscription with the same key starts a new series.
func (r *consumeRegistry) forget(key consumeKey, c *consumeCounters) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey[key] != c || c.inFlight.Load() != 0 {
		return false
	}
	delete(r.byKey, key)
	return true
}

func (r *consumeRegistry) close() error {
	r.mu.Lock()
	reg := r.reg
	r.reg, r.closed = nil, true
	r.mu.Unlock()
	if reg != nil {
		return reg.Unregister()
	}
	return nil
}
