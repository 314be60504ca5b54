package telemetry

import (
	"errors"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is the tracing and metrics state of one bus: a Tracer and a Meter
// of scope ScopeName, the propagator, and every instrument. It is safe for
// concurrent use. Build one with New; the zero value is not usable.
type Telemetry struct {
	tracer     trace.Tracer
	meter      metric.Meter
	propagator propagation.TextMapPropagator
	linksOnly  bool
	serverAddr string
	serverPort int
	inst       Instruments

	sendersMu sync.Mutex
	senders   map[string]*Sender

	consume consumeRegistry
}

// Instruments are the metric instruments of a Telemetry, for the middleware of
// this module (and users writing their own). Record on them with attribute
// sets built once, through metric.WithAttributeSet.
//
// ConsumedMessages and InFlight are observable: they are fed by per-(system,
// topic, group) atomic counters that Subscription.RecordConsumed and
// Subscription.AddInFlight move, read by one callback at each collection.
// Their exported data (a monotonic, respectively non-monotonic, Sum with the
// same name, unit and attributes) is what the synchronous instruments
// produced; what changes is that the hot path makes no SDK call.
type Instruments struct {
	SentMessages      metric.Int64Counter                 // messaging.client.sent.messages
	OperationDuration metric.Float64Histogram             // messaging.client.operation.duration
	ConsumedMessages  metric.Int64ObservableCounter       // messaging.client.consumed.messages
	ProcessDuration   metric.Float64Histogram             // messaging.process.duration
	Retries           metric.Int64Counter                 // eventstream.retries
	DeadLetters       metric.Int64Counter                 // eventstream.dead_letters
	InFlight          metric.Int64ObservableUpDownCounter // eventstream.in_flight
	DeliveryLatency   metric.Float64Histogram             // eventstream.delivery.latency
	QueueDepth        metric.Int64ObservableGauge
	PoolRunning       metric.Int64ObservableGauge
	PoolCapacity      metric.Int64ObservableGauge
	PoolWaiting       metric.Int64ObservableGauge
	ConsumerLag       metric.Int64ObservableGauge
}

// Option configures New.
type Option interface{ apply(*config) }

type config struct {
	tp         trace.TracerProvider
	mp         metric.MeterProvider
	propagator propagation.TextMapPropagator
	linksOnly  bool
	serverAddr string
	serverPort int
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTracerProvider sets the provider of the library's Tracer.
// Default: otel.GetTracerProvider() (the global, read when New is called;
// the global delegates, so setting it later still takes effect).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithMeterProvider sets the provider of the library's Meter.
// Default: otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithPropagator sets the propagator that writes the creation context into
// event headers and reads it back. Default: the TraceContext + Baggage
// composite — not otel.GetTextMapPropagator(), whose default is a no-op that
// would silently cut every trace at the bus.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) { c.propagator = p })
}

// WithLinksOnly makes every process span the root of a new trace, linked to
// the event's creation context, instead of its child. Default: off (a
// producer and its consumers form one trace).
func WithLinksOnly() Option {
	return optionFunc(func(c *config) { c.linksOnly = true })
}

// WithServerAddress sets server.address and server.port on Kafka send spans
// (the first seed broker, say). Default: not set. Ignored for other systems;
// a port <= 0 is left out.
func WithServerAddress(host string, port int) Option {
	return optionFunc(func(c *config) { c.serverAddr, c.serverPort = host, port })
}

func defaultConfig() config {
	return config{
		tp:         otel.GetTracerProvider(),
		mp:         otel.GetMeterProvider(),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// New returns the telemetry of one bus. It fails only when the MeterProvider
// rejects an instrument.
func New(opts ...Option) (*Telemetry, error) {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.propagator == nil {
		c.propagator = defaultConfig().propagator
	}
	t := &Telemetry{
		tracer: c.tp.Tracer(ScopeName,
			trace.WithInstrumentationVersion(ScopeVersion),
			trace.WithSchemaURL(SemConvSchemaURL)),
		meter: c.mp.Meter(ScopeName,
			metric.WithInstrumentationVersion(ScopeVersion),
			metric.WithSchemaURL(SemConvSchemaURL)),
		propagator: c.propagator,
		linksOnly:  c.linksOnly,
		serverAddr: c.serverAddr,
		serverPort: c.serverPort,
	}
	if err := t.inst.init(t.meter); err != nil {
		return nil, err
	}
	return t, nil
}

func (in *Instruments) init(m metric.Meter) error {
	var err error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return c
	}
	histogram := func(name, desc string) metric.Float64Histogram {
		h, e := m.Float64Histogram(name, metric.WithUnit(UnitSeconds), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(DurationBuckets...))
		err = errors.Join(err, e)
		return h
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, e := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return g
	}
	in.SentMessages = counter(MetricSentMessages, UnitMessage, DescSentMessages)
	in.OperationDuration = histogram(MetricOperationDuration, DescOperationDuration)
	consumed, e := m.Int64ObservableCounter(MetricConsumedMessages, metric.WithUnit(UnitMessage),
		metric.WithDescription(DescConsumedMessages))
	in.ConsumedMessages, err = consumed, errors.Join(err, e)
	in.ProcessDuration = histogram(MetricProcessDuration, DescProcessDuration)
	in.Retries = counter(MetricRetries, UnitRetry, DescRetries)
	in.DeadLetters = counter(MetricDeadLetters, UnitMessage, DescDeadLetters)
	inFlight, e := m.Int64ObservableUpDownCounter(MetricInFlight, metric.WithUnit(UnitMessage),
		metric.WithDescription(DescInFlight))
	in.InFlight, err = inFlight, errors.Join(err, e)
	in.DeliveryLatency = histogram(MetricDeliveryLatency, DescDeliveryLatency)
	in.QueueDepth = gauge(MetricQueueDepth, UnitMessage, DescQueueDepth)
	in.PoolRunning = gauge(MetricPoolRunning, UnitGoroutine, DescPoolRunning)
	in.PoolCapacity = gauge(MetricPoolCapacity, UnitGoroutine, DescPoolCapacity)
	in.PoolWaiting = gauge(MetricPoolWaiting, UnitTask, DescPoolWaiting)
	in.ConsumerLag = gauge(MetricConsumerLag, UnitMessage, DescConsumerLag)
	return err
}

// Close unregisters the metric callback that reports
// messaging.client.consumed.messages and eventstream.in_flight (registered
// with the first Subscription). Call it when the bus closes; after Close the
// two metrics are no longer reported to the MeterProvider. It is idempotent
// and safe to call concurrently; Subscriptions made after Close count but
// are not reported.
func (t *Telemetry) Close() error { return t.consume.close() }

// Tracer returns the library's Tracer (scope ScopeName).
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// Meter returns the library's Meter (scope ScopeName).
func (t *Telemetry) Meter() metric.Meter { return t.meter }

// Propagator returns the propagator that carries the creation context in
// event headers.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// LinksOnly reports whether process spans are new roots linked to the
// creation context (WithLinksOnly).
func (t *Telemetry) LinksOnly() bool { return t.linksOnly }

// ServerAddress returns what WithServerAddress set.
func (t *Telemetry) ServerAddress() (host string, port int) { return t.serverAddr, t.serverPort }

// Instruments returns the instruments. Callers must not modify them.
func (t *Telemetry) Instruments() *Instruments { return &t.inst }
