package eventstream

import (
	"context"
	"errors"
)

// A subscription that leaves — Off once its shutdown timeout ran out, a
// Kafka rebalance that revokes a partition — cancels the context of its
// handlers still running. A handler that answers with that context's error
// has not done its event, and has not failed it either: the event goes
// back to its group (memory mode: another member, or counted by Off or
// Close when none is left; Kafka: left uncommitted for the partition's
// next owner), neither retried here nor dead-lettered. Close keeps its own
// rule: what it cuts off is counted, never dead-lettered.

// errLeaving is the hand-back a handler's "not done" answer becomes; try
// tells it from a handler's own Requeue by identity, so that the bound of
// WithMaxRequeues does not turn it into a dead letter.
var errLeaving = &RequeueError{Reason: "its subscription is leaving"}

// notDone turns a handler's context error, returned because its
// subscription is leaving, into errLeaving, before telemetry and the
// circuit breaker see it as a failed attempt. It allocates nothing.
func (s *subscription) notDone(next Handler) Handler {
	return func(ctx context.Context, e *Event) error {
		err := next(ctx, e)
		if err != nil && s.leaving(ctx) && errors.Is(err, context.Canceled) {
			return errLeaving
		}
		return err
	}
}

// leaving reports whether ctx, a delivery's, ended because its
// subscription (or its Kafka partition) is leaving, not because the bus
// is closing.
func (s *subscription) leaving(ctx context.Context) bool {
	return ctx.Err() != nil && s.bus.baseCtx.Err() == nil
}
