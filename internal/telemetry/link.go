package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// sendLinkKey carries the span context a send span links to.
type sendLinkKey struct{}

// WithSendLink returns ctx whose send span links to sc: a replayed event's
// send links to its dead letter's trace, while its parent stays the
// caller's span (or none).
func WithSendLink(ctx context.Context, sc trace.SpanContext) context.Context {
	if !sc.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, sendLinkKey{}, sc)
}

// appendSendLink appends the link WithSendLink put in ctx, if any.
func appendSendLink(ctx context.Context, opts []trace.SpanStartOption) []trace.SpanStartOption {
	if sc, ok := ctx.Value(sendLinkKey{}).(trace.SpanContext); ok {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return opts
}
