package middleware

import (
	"context"
	"errors"
	"log/slog"

	"libx.net/eventstream/event"
)

// Log attribute keys used by Logging.
const (
	logKeyTopic   = "topic"
	logKeyEventID = "event_id"
	logKeyAttempt = "attempt"
	logKeyError   = "error"
	logKeyStack   = "stack"
)

// Logging returns middleware that logs the outcome of each call of next to
// logger: a failure at Warn, a panic (a *PanicError from Recover, which must
// therefore run inside Logging, not outside it) at Error with its stack, and
// a success at Debug. Records carry topic, event_id, attempt and error, and
// are logged with the call's ctx so that a slog handler adding trace ids can
// find them. The messages name no direction, so the same middleware serves
// the emit chain and the consume chain.
//
// A nil logger means slog.Default() at the time of each record, so a later
// slog.SetDefault takes effect. When Debug is disabled the success path
// allocates nothing.
func Logging(logger *slog.Logger) event.Middleware {
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			err := next(ctx, e)
			l := logger
			if l == nil {
				l = slog.Default()
			}
			if err == nil {
				// Enabled first: building the attrs would cost on every event.
				if l.Enabled(ctx, slog.LevelDebug) {
					l.LogAttrs(ctx, slog.LevelDebug, "eventstream: event handled", eventAttrs(ctx, e)...)
				}
				return nil
			}
			if _, ok := event.IsRequeue(err); ok {
				// Not a failure; the bus logs the hand-back itself.
				if l.Enabled(ctx, slog.LevelDebug) {
					l.LogAttrs(ctx, slog.LevelDebug, "eventstream: event handed back", append(eventAttrs(ctx, e), slog.Any(logKeyError, err))...)
				}
				return err
			}
			attrs := append(eventAttrs(ctx, e), slog.Any(logKeyError, err))
			if pe, ok := errors.AsType[*PanicError](err); ok {
				l.LogAttrs(ctx, slog.LevelError, "eventstream: event panicked",
					append(attrs, slog.String(logKeyStack, string(pe.Stack)))...)
				return err
			}
			l.LogAttrs(ctx, slog.LevelWarn, "eventstream: event failed", attrs...)
			return err
		}
	}
}

// eventAttrs returns the attributes every record of Logging carries, with
// room for two more so appending error and stack does not reallocate.
func eventAttrs(ctx context.Context, e *event.Event) []slog.Attr {
	attrs := make([]slog.Attr, 3, 5)
	attrs[0] = slog.String(logKeyTopic, e.Topic)
	attrs[1] = slog.String(logKeyEventID, e.ID)
	attrs[2] = slog.Int(logKeyAttempt, event.Attempt(ctx))
	return attrs
}
