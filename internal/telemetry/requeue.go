package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/telemetry"
)

// setRedelivery notes on a process record how often e was handed back
// before, and whether this attempt handed it back again (re not nil).
// Both are rare: they live out of line.
func (r *record) setRedelivery(e *event.Event, re *event.RequeueError) {
	if e.Redelivery == 0 && re == nil {
		return
	}
	x := r.extra()
	x.redelivery = int32(min(e.Redelivery, 1<<31-1))
	if re != nil {
		x.requeued = true
		x.errMsg = re.Reason
	}
}

// addRequeueEvent marks an attempt whose handler handed its event back:
// a span event, not an error status.
func addRequeueEvent(span trace.Span, re *event.RequeueError) {
	span.AddEvent(telemetry.EventRequeue, trace.WithAttributes(
		attribute.String(telemetry.AttrRequeueReason, re.Reason)))
}
