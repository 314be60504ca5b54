package eventstream

import (
	"log/slog"
	"maps"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
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
	middleware      []Middleware
	emitMiddleware  []Middleware
	deadLetterTopic func(topic string) string // nil: dead letters off
	errs            []error                   // options refused while applied
}

// defaultOptions holds every option's default.
func defaultOptions() options {
	return options{
		logger:          nil, // slog.Default() at New, so a later SetDefault is honoured
		deadLetterTopic: DefaultDeadLetterTopic,
	}
}

func (o *options) validate() error {
	if len(o.errs) > 0 {
		return o.errs[0]
	}
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

// meterProviderOrGlobal is the MeterProvider in effect.
func (o *options) meterProviderOrGlobal() metric.MeterProvider {
	if o.meterProvider != nil {
		return o.meterProvider
	}
	return otel.GetMeterProvider()
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithLogger sets the logger for the bus's own logs (failures, retries,
// dead letters, panics, shutdown). Default: slog.Default(). Records logged
// with a context carry trace_id and span_id.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithTracerProvider sets where spans go. Default: otel.GetTracerProvider().
// History needs no tracer; with one that records, its entries carry the
// spans' trace and span ids.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *options) { o.tracerProvider = tp })
}

// WithMeterProvider sets where metrics go. Default: otel.GetMeterProvider().
// GetStats needs no provider: it reads the same counters and histograms
// the metrics report.
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
// WithTracerProvider or WithMeterProvider (they are ignored).
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
// Default: DefaultDeadLetterTopic ("<topic>.dlq"). nil is an error: turn
// dead letters off with WithoutDeadLetter.
func WithDeadLetterTopic(name func(topic string) string) Option {
	return optionFunc(func(o *options) {
		if name == nil {
			o.errs = append(o.errs, &ConfigError{Field: "WithDeadLetterTopic", Reason: "nil function (use WithoutDeadLetter to turn dead letters off)"})
			return
		}
		o.deadLetterTopic = name
	})
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
	breaker     *CircuitBreaker // nil: none (circuit.go)
	maxRequeues *int            // nil: DefaultMaxRequeues (requeue.go)
	rateLimit   *rateLimit      // nil: none (ratelimit.go)
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

// EmitOption configures one Emit: its key, headers, correlation id, or
// asynchronous completion.
type EmitOption interface{ applyEmit(*emitOptions) }

type emitOptions struct {
	key           string
	correlationID string
	headers       map[string]string
	async         func(error)
}

type emitOptionFunc func(*emitOptions)

func (f emitOptionFunc) applyEmit(o *emitOptions) { f(o) }

// WithKey sets the event's partition key: events with the same key keep
// their order (one lane of each group; on Kafka, one partition). Default:
// no key.
func WithKey(key string) EmitOption {
	return emitOptionFunc(func(o *emitOptions) { o.key = key })
}

// WithCorrelationID names the chain the event belongs to — an HTTP
// request id, a saga id — instead of the default: the correlation id of
// the event whose handler emits it, or, outside any handler, the event's
// own id. Events its handlers emit inherit it. An empty id keeps the
// default.
func WithCorrelationID(id string) EmitOption {
	return emitOptionFunc(func(o *emitOptions) { o.correlationID = id })
}

// WithHeaders adds headers to the event (later ones override earlier
// ones). The map is copied. Default: none.
func WithHeaders(headers map[string]string) EmitOption {
	return emitOptionFunc(func(o *emitOptions) {
		if o.headers == nil {
			o.headers = make(map[string]string, len(headers))
		}
		maps.Copy(o.headers, headers)
	})
}

// WithAsync makes Emit return as soon as the transport has taken the event
// and calls done once with the outcome: the throughput way to emit. In
// distributed mode Emit returns once the producer buffered the record
// (waiting only while KafkaConfig.MaxBufferedRecords are outstanding, until
// ctx is done) and done is called from the producer's goroutine with the
// broker's verdict (nil once acknowledged); records emitted this way are
// batched while requests are in flight. In memory mode Emit already returns
// once the event is queued, and done(nil) is called before it returns.
//
// done is called only when Emit returned nil; an Emit that fails returns
// the error and does not call it. The send span and send metrics cover the
// hand-off; a failure the broker reports later reaches only done (and the
// logs). A nil done is allowed (fire and forget).
func WithAsync(done func(err error)) EmitOption {
	if done == nil {
		done = func(error) {}
	}
	return emitOptionFunc(func(o *emitOptions) { o.async = done })
}
