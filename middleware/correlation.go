package middleware

import (
	"context"
	"log/slog"

	"libx.net/eventstream/event"
)

// logKeyCorrelation is the attribute Correlation adds to the handler's
// logger.
const logKeyCorrelation = "correlation_id"

type correlationKey struct{}

type loggerKey struct{}

// Correlation returns middleware that puts the event's correlation id —
// Event.CorrelationID, the id shared by every event of one chain (an
// order, a request), which a log search or a trace query follows across
// services — into the handler's context, where CorrelationID reads it, and
// a logger carrying it as correlation_id into the context, where Logger
// reads it. An event without one (a record another producer wrote) is the
// first of its chain: its own id is the correlation id.
//
// logger is the logger the handler's one is derived from; nil means
// slog.Default() at the time of each event. The derived logger is built
// once per event, so a handler that logs several lines pays for the
// attribute once.
func Correlation(logger *slog.Logger) event.Middleware {
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			id := correlationOf(e)
			l := logger
			if l == nil {
				l = slog.Default()
			}
			ctx = context.WithValue(ctx, correlationKey{}, id)
			ctx = context.WithValue(ctx, loggerKey{}, l.With(slog.String(logKeyCorrelation, id)))
			return next(ctx, e)
		}
	}
}

// correlationOf is e's correlation id, else its own id.
func correlationOf(e *event.Event) string {
	if e.CorrelationID != "" {
		return e.CorrelationID
	}
	return e.ID
}

// CorrelationID returns the correlation id Correlation put into ctx, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// Logger returns the logger Correlation put into ctx (it carries the
// correlation id), or slog.Default() when there is none, so a handler can
// always log through it.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
