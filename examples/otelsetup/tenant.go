package otelsetup

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream"
)

// Tenant is a middleware written the way a user writes one: it copies the
// tenant id that the emitting service put in the W3C baggage onto the
// process span, onto a metric of its own and onto the handler's log lines.
// A middleware with state is a struct with a Middleware method.
type Tenant struct {
	handled metric.Int64Counter
	logger  *slog.Logger
}

// NewTenant builds the middleware; it can fail, so it returns an error.
func NewTenant(mp metric.MeterProvider, logger *slog.Logger) (*Tenant, error) {
	c, err := mp.Meter("example.com/tenant").Int64Counter("tenant.events.handled",
		metric.WithUnit("{event}"), metric.WithDescription("Events handled, by tenant."))
	if err != nil {
		return nil, err
	}
	return &Tenant{handled: c, logger: logger}, nil
}

type loggerKey struct{}

// Logger returns the logger the middleware put in ctx (with the tenant).
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// Middleware implements eventstream.Middleware.
func (t *Tenant) Middleware(next eventstream.Handler) eventstream.Handler {
	return func(ctx context.Context, e *eventstream.Event) error {
		tenant := baggage.FromContext(ctx).Member("tenant.id").Value()
		if tenant == "" {
			tenant = "unknown"
		}
		// Inside the bus's process span: this attribute lands on it.
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("tenant.id", tenant))
		ctx = context.WithValue(ctx, loggerKey{}, t.logger.With("tenant", tenant))
		err := next(ctx, e)
		t.handled.Add(ctx, 1, metric.WithAttributes(
			attribute.String("tenant.id", tenant), attribute.Bool("ok", err == nil)))
		return err
	}
}

// WithTenant returns ctx whose baggage carries the tenant id; the bus's
// propagator sends it along in the event's headers.
func WithTenant(ctx context.Context, tenant string) context.Context {
	m, err := baggage.NewMember("tenant.id", tenant)
	if err != nil {
		return ctx
	}
	b, err := baggage.FromContext(ctx).SetMember(m)
	if err != nil {
		return ctx
	}
	return baggage.ContextWithBaggage(ctx, b)
}
