package eventstream

import (
	"context"
	"log/slog"
	"strconv"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/history"
)

// Option configures a bus beyond Config: telemetry providers, the logger,
// middleware and the dead-letter topic. Options are applied in order.
type Option interface{ apply(*options) }

type options struct {
	logger          *slog.Logger
	tracerProvider  trace.TracerProvider
	meterProvider   metric.MeterProvider
	propagator      propagation.TextMapPropagator
	linksOnly       bool
	telemetryOff    bool
	statsReader     *history.StatsReader
	middleware      []Middleware
	emitMiddleware  []Middleware
	deadLetterTopic func(topic string) string // nil: dead letters off
}

// defaultOptions holds every option's default.
func defaultOptions() options {
	return options{
		logger:          nil, // slog.Default() at New, so a later SetDefault is honoured
		deadLetterTopic: DefaultDeadLetterTopic,
	}
}

func (o *options) validate() error {
	for i, mw := range o.middleware {
		if mw == nil {
			return &ConfigError{Field: "WithMiddleware", Reason: "middleware " + strconv.Itoa(i) + " is nil"}
		}
	}
	for i, mw := range o.emitMiddleware {
		if mw == nil {
			return &ConfigError{Field: "WithEmitMiddleware", Reason: "middleware " + strconv.Itoa(i) + " is nil"}
		}
	}
	return nil
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithLogger sets the logger for the bus's own logs (failures, retries,
// dead letters, panics, shutdown). Default: slog.Default(). Records logged
// with a context carry trace_id and span_id.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithTracerProvider sets where spans go. Default: otel.GetTracerProvider();
// when that is the global no-op and history is enabled, the bus builds its
// own SDK provider to feed GetHistory.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *options) { o.tracerProvider = tp })
}

// WithMeterProvider sets where metrics go. Default: otel.GetMeterProvider();
// when that is the global no-op and metrics are enabled, the bus builds its
// own SDK provider to feed GetStats. With your own SDK provider, add
// WithStatsReader so GetStats can read it.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(o *options) { o.meterProvider = mp })
}

// WithPropagator sets how trace context travels in event headers.
// Default: W3C TraceContext + Baggage (not the global, which is a no-op
// unless set).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return optionFunc(func(o *options) { o.propagator = p })
}

// WithLinksOnlyTracing makes each process span the root of a new trace,
// linked to the event's creation context, instead of its child. Default:
// child, so one trace holds the producer and all its consumers.
func WithLinksOnlyTracing() Option { return optionFunc(func(o *options) { o.linksOnly = true }) }

// WithoutTelemetry switches tracing, metrics, history and stats off: the
// chains hold no telemetry middleware at all. Not combinable with
// WithTracerProvider, WithMeterProvider or WithStatsReader (they are ignored).
func WithoutTelemetry() Option { return optionFunc(func(o *options) { o.telemetryOff = true }) }

// WithMiddleware adds consume-side middleware that wraps every
// subscription's handler, inside the built-ins (so it runs once per
// attempt, inside the process span) and outside per-subscription middleware.
// Applied in the order given.
func WithMiddleware(mw ...Middleware) Option {
	return optionFunc(func(o *options) { o.middleware = append(o.middleware, mw...) })
}

// WithEmitMiddleware adds emit-side middleware, run inside the send span,
// just before the transport. It may set headers or the key on the event.
func WithEmitMiddleware(mw ...Middleware) Option {
	return optionFunc(func(o *options) { o.emitMiddleware = append(o.emitMiddleware, mw...) })
}

// WithDeadLetterTopic names the dead-letter topic of each topic.
// Default: DefaultDeadLetterTopic ("<topic>.dlq").
func WithDeadLetterTopic(name func(topic string) string) Option {
	return optionFunc(func(o *options) { o.deadLetterTopic = name })
}

// WithoutDeadLetter drops events whose retries ran out (after logging them
// at Error) instead of sending them to a dead-letter topic.
func WithoutDeadLetter() Option { return optionFunc(func(o *options) { o.deadLetterTopic = nil }) }

// DefaultDeadLetterTopic is "<topic>.dlq".
func DefaultDeadLetterTopic(topic string) string { return topic + ".dlq" }

// SubscribeOption configures one subscription.
type SubscribeOption interface{ applySub(*subOptions) }

type subOptions struct {
	group       string
	concurrency int
	retry       *RetryPolicy
	middleware  []Middleware
}

type subOptionFunc func(*subOptions)

func (f subOptionFunc) applySub(o *subOptions) { f(o) }

// WithConsumerGroup puts the subscription in a consumer group: every group
// receives every event, and one member of a group handles it. Default: a
// group of its own. Names follow the topic rule ([a-zA-Z0-9._-]).
func WithConsumerGroup(name string) SubscribeOption {
	return subOptionFunc(func(o *subOptions) { o.group = name })
}

// WithConcurrency lets up to n events of the subscription run at once;
// events with the same key still run one at a time, in order. Default 1,
// which keeps emit order.
func WithConcurrency(n int) SubscribeOption {
	return subOptionFunc(func(o *subOptions) { o.concurrency = n })
}

// WithRetryPolicy sets the subscription's retry policy. Default:
// Config.Retry, else DefaultRetryPolicy().
func WithRetryPolicy(p *RetryPolicy) SubscribeOption {
	return subOptionFunc(func(o *subOptions) { o.retry = p })
}

// WithSubscriptionMiddleware adds middleware around this subscription's
// handler only, innermost (after the bus-wide WithMiddleware).
func WithSubscriptionMiddleware(mw ...Middleware) SubscribeOption {
	return subOptionFunc(func(o *subOptions) { o.middleware = append(o.middleware, mw...) })
}

// Emit metadata travels in the context so that Emit keeps its three
// arguments; like gRPC's outgoing metadata.
type emitMetaKey struct{}

type emitMeta struct {
	key     string
	headers map[string]string
	async   func(error) // ContextWithAsyncEmit
}

// ContextWithKey returns ctx carrying the partition key for the next Emit:
// events with the same key keep their order (and share a Kafka partition).
func ContextWithKey(ctx context.Context, key string) context.Context {
	m := emitMetaFrom(ctx)
	m.key = key
	return context.WithValue(ctx, emitMetaKey{}, &m)
}

// ContextWithHeaders returns ctx carrying headers for the next Emit, added
// to (and overriding) any headers ctx already carries. The map is copied.
func ContextWithHeaders(ctx context.Context, headers map[string]string) context.Context {
	m := emitMetaFrom(ctx)
	merged := make(map[string]string, len(m.headers)+len(headers))
	for k, v := range m.headers {
		merged[k] = v
	}
	for k, v := range headers {
		merged[k] = v
	}
	m.headers = merged
	return context.WithValue(ctx, emitMetaKey{}, &m)
}

func emitMetaFrom(ctx context.Context) emitMeta {
	if m, ok := ctx.Value(emitMetaKey{}).(*emitMeta); ok {
		return *m
	}
	return emitMeta{}
}
