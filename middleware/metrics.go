package middleware

import (
	"context"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/telemetry"
)

// EmitMetrics returns emit-chain middleware that records each publish:
// messaging.client.sent.messages and messaging.client.operation.duration,
// with error.type on failure. Place it inside EmitTracing so that the send
// span is in ctx and becomes the duration's exemplar. Attribute sets are
// built once per topic.
func EmitMetrics(t *telemetry.Telemetry, system string) event.Middleware {
	sender := t.Sender(system)
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			start := time.Now()
			err := next(ctx, e)
			sender.Destination(e.Topic).RecordSend(ctx, time.Since(start), err)
			return err
		}
	}
}

// ConsumeMetrics returns consume-chain middleware, placed OUTSIDE retry so it
// runs once per delivery: it counts messaging.client.consumed.messages,
// records eventstream.delivery.latency (the event's age when processing
// starts) and keeps eventstream.in_flight up while the delivery, retries
// included, is under way.
func ConsumeMetrics(s *telemetry.Subscription) event.Middleware {
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			s.RecordConsumed(ctx)
			if !e.Time.IsZero() {
				s.RecordDeliveryLatency(ctx, time.Since(e.Time))
			}
			s.AddInFlight(ctx, 1)
			defer s.AddInFlight(ctx, -1)
			return next(ctx, e)
		}
	}
}

// ProcessMetrics returns consume-chain middleware, placed inside retry and
// inside ProcessTracing, that records messaging.process.duration for each
// attempt, with error.type on failure; the process span in ctx becomes the
// exemplar.
func ProcessMetrics(s *telemetry.Subscription) event.Middleware {
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			start := time.Now()
			err := next(ctx, e)
			s.RecordProcess(ctx, time.Since(start), err)
			return err
		}
	}
}
