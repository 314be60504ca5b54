// Package telemetry is the bus's one measurement point per event: the emit
// and consume middleware that start its spans, move its counters, time its
// handlers and write its history, so that spans, metrics, GetStats and
// GetHistory are views over the same measurements and never disagree.
//
// Cost rule: what nobody looks at costs nothing per event. With no tracer
// that can record (the otel global before an SDK is installed, a no-op
// provider), no span is started, no attribute built, no context allocated
// and, inside one process, no trace context written or parsed. A histogram
// whose instrument is not Enabled is neither timed nor recorded. Counters are
// atomics of the bus's own, which the OTel instruments observe, so an SDK
// pays one callback per collection rather than a call per event.
package telemetry

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"libx.net/eventstream/event"
	"libx.net/eventstream/history"
	"libx.net/eventstream/telemetry"
)

// Config says what a Telemetry records and where to.
type Config struct {
	// TracerProvider, MeterProvider: nil means the otel globals.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Propagator writes the creation context into the headers of events
	// that leave the process. Nil means W3C TraceContext + Baggage.
	Propagator propagation.TextMapPropagator
	// LinksOnly makes process spans new roots linked to the creation
	// context.
	LinksOnly bool
	// System is the messaging.system value.
	System string
	// InProcess: events never leave the process (memory mode), so the
	// creation context rides on the event instead of in its headers.
	InProcess bool
	// ServerAddress and ServerPort go on Kafka send spans ("" and 0: none).
	ServerAddress string
	ServerPort    int
	// History is the size of the ring of recent operations; 0 turns
	// history off.
	History int
	// Stats keeps what GetStats reports beyond the counters the metrics
	// need: attempts that succeeded and failed, latency histograms.
	Stats bool
	// Goexit is the failure an attempt records when its handler ended its
	// goroutine (runtime.Goexit) instead of returning. Nil: errGoexit.
	Goexit error
}

// Telemetry is the telemetry of one bus. It is safe for concurrent use.
type Telemetry struct {
	system    string
	inProcess bool
	linksOnly bool
	stats     bool
	ring      *historyRings // nil: history off
	goexit    error

	tracer   trace.Tracer
	meter    metric.Meter
	traceOn  gate
	meterOn  gate
	prop     propagation.TextMapPropagator
	inst     instruments
	reg      *registry                  // referenced by the counters' callback, which outlives the bus
	lastSend atomic.Pointer[sendSeries] // the series of the last topic emitted to
	sendSpan []attribute.KeyValue       // server.address/port on Kafka send spans
	ages     atomic.Pointer[AgeFunc]    // the time lag's source while the bus runs
	perSecMu sync.Mutex
	perSec   *perSecond // the plots' sampler; nil until someone looks
}

// gate tells whether a provider can record. A provider that never records
// (a no-op) is off for good; the otel global is off until an SDK is
// installed behind it, which it learns at each call by comparing the global
// with the placeholder it started with (an atomic load).
type gate struct {
	off         bool
	placeholder any // the global's placeholder, or nil
	current     func() any
}

func (g *gate) on() bool {
	if g.off {
		return false
	}
	return g.placeholder == nil || g.current() != g.placeholder
}

// The otel globals' placeholder providers, which forward to an SDK once one
// is installed and record nothing before, live in an internal package; they
// are told apart by type.
const otelGlobalPkg = "go.opentelemetry.io/otel/internal/global"

func isGlobalPlaceholder(p any) bool {
	t := reflect.TypeOf(p)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().PkgPath() == otelGlobalPkg
}

func traceGate(tp trace.TracerProvider) gate {
	switch tp.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
		return gate{off: true}
	}
	if t := reflect.TypeOf(tp); t.PkgPath() == "go.opentelemetry.io/otel/trace" && t.Name() == "noopTracerProvider" {
		return gate{off: true} // trace.NewNoopTracerProvider, deprecated but still about
	}
	if isGlobalPlaceholder(tp) {
		return gate{placeholder: tp, current: func() any { return otel.GetTracerProvider() }}
	}
	return gate{}
}

func meterGate(mp metric.MeterProvider) gate {
	switch mp.(type) {
	case metricnoop.MeterProvider, *metricnoop.MeterProvider:
		return gate{off: true}
	}
	if isGlobalPlaceholder(mp) {
		return gate{placeholder: mp, current: func() any { return otel.GetMeterProvider() }}
	}
	return gate{}
}

// New returns the telemetry of one bus. It fails only when the
// MeterProvider rejects an instrument or a callback.
func New(cfg Config) (*Telemetry, error) {
	tp, mp, prop := cfg.TracerProvider, cfg.MeterProvider, cfg.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	t := &Telemetry{
		system:    cfg.System,
		inProcess: cfg.InProcess,
		linksOnly: cfg.LinksOnly,
		stats:     cfg.Stats,
		goexit:    cfg.Goexit,
		tracer: tp.Tracer(telemetry.ScopeName,
			trace.WithInstrumentationVersion(telemetry.ScopeVersion),
			trace.WithSchemaURL(semconv.SchemaURL)),
		traceOn: traceGate(tp),
		meterOn: meterGate(mp),
		prop:    prop,
	}
	if t.goexit == nil {
		t.goexit = errGoexit
	}
	if cfg.History > 0 {
		t.ring = newHistory(cfg.History)
	}
	if cfg.System == telemetry.SystemKafka && cfg.ServerAddress != "" {
		t.sendSpan = append(t.sendSpan, semconv.ServerAddress(cfg.ServerAddress))
		if cfg.ServerPort > 0 {
			t.sendSpan = append(t.sendSpan, semconv.ServerPort(cfg.ServerPort))
		}
	}
	t.meter = mp.Meter(telemetry.ScopeName,
		metric.WithInstrumentationVersion(telemetry.ScopeVersion),
		metric.WithSchemaURL(semconv.SchemaURL))
	if err := t.inst.init(t.meter); err != nil {
		return nil, err
	}
	// The callback holds the registry and a copy of the instruments, not
	// the Telemetry: once the bus is gone, its history can be collected.
	t.reg = &registry{system: cfg.System}
	// The counters' callback stays registered after Close: a reader that
	// collects after the bus closed (the usual order when the provider's
	// Shutdown is deferred first) still finds every number measured. It
	// reads atomics only, and goes with the provider.
	if _, err := t.meter.RegisterCallback(t.reg.observe(t.inst), t.inst.observables()...); err != nil {
		return nil, err
	}
	return t, nil
}

// startOf reads the clock when processing of e starts. An event made in
// this process carries a monotonic reading: the time since it is one read
// of the monotonic clock, half the cost of time.Now, and the result keeps
// the event's wall-clock time as its anchor. An event from elsewhere gets
// a full reading.
func startOf(e *event.Event) time.Time {
	if e.Time != e.Time.Round(0) { // Round(0) drops the monotonic reading
		return e.Time.Add(time.Since(e.Time))
	}
	return time.Now()
}

// sendSeries returns the series of topic. Most Emits go to the topic of
// the one before, so the last series is checked first: a string compare
// instead of a map lookup.
func (t *Telemetry) sendSeries(topic string) *sendSeries {
	if s := t.lastSend.Load(); s != nil && s.labels.topic == topic {
		return s
	}
	s := t.reg.send(topic)
	t.lastSend.Store(s)
	return s
}

// tracing reports whether spans may record.
func (t *Telemetry) tracing() bool { return t.traceOn.on() }

// counting reports whether the counters are read by anyone: GetStats, or
// a MeterProvider that records.
func (t *Telemetry) counting() bool { return t.stats || t.meterOn.on() }

// Recent returns up to n of the most recent operations, newest first; nil
// when history is off or n <= 0.
func (t *Telemetry) Recent(n int) []history.Entry {
	if t.ring == nil || n <= 0 {
		return nil
	}
	return t.ring.recent(n)
}

var errGoexit = errors.New("handler ended its goroutine (runtime.Goexit) instead of returning")

// ErrorType is the error.type of err: the conventions' rule
// (semconv.ErrorType: an ErrorType() string method in err's chain, else
// err's Go type after fmt.Errorf wrappers).
func ErrorType(err error) string { return semconv.ErrorType(err).Value.AsString() }
