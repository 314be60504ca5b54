package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
)

// Emit returns the emit chain's measurement point, outermost: the send
// span ("send {topic}", PRODUCER; a span context already in ctx is its
// parent — the caller's span, or the original creation context of a dead
// letter), messaging.client.sent.messages and
// messaging.client.operation.duration (error.type on failure), and the
// history's send entry.
//
// The send span's context is the event's creation context. Inside the
// process it rides on the event; an event that leaves it gets it in its
// headers, through the propagator. With no tracer that records, an event
// that leaves the process still gets headers when ctx holds a span context
// or baggage to pass on; inside the process nothing is carried.
func (t *Telemetry) Emit() event.Middleware {
	return func(next event.Handler) event.Handler {
		return func(ctx context.Context, e *event.Event) error {
			tracing, counting := t.tracing(), t.counting()
			histOn := t.inst.operationDuration.Enabled(ctx)
			if !tracing && !counting && !histOn && t.ring == nil {
				// Nobody looks: nothing to measure.
				if !t.inProcess {
					t.injectAmbient(ctx, e)
				}
				return next(ctx, e)
			}
			s := t.sendSeries(e.Topic)
			var span trace.Span
			if tracing {
				ctx, span = t.startSend(ctx, s, e)
				t.carry(ctx, span.SpanContext(), e)
			} else if !t.inProcess {
				t.injectAmbient(ctx, e)
			}

			err := next(ctx, e)

			// The send began when Emit made the event, moments ago: its
			// time is the start, which saves a clock read per event.
			var dur time.Duration
			timed := histOn || t.ring != nil
			if timed {
				dur = time.Since(e.Time) // one monotonic read: e.Time was made here
			}
			var errType string
			if err != nil {
				errType = ErrorType(err)
			}
			if counting {
				if err == nil {
					s.sent.Add(1)
				} else {
					s.failed.Add(1)
					s.errs.get(errType, s.kvs).n.Add(1)
				}
			}
			if histOn {
				rec := s.rec
				if err != nil {
					rec = s.errs.get(errType, s.kvs).rec
				}
				t.inst.operationDuration.Record(ctx, dur.Seconds(), rec...)
			}
			if t.ring != nil {
				r := record{labels: &s.labels, op: opSend, start: e.Time.UnixNano(), dur: dur}
				r.fill(e.ID, err, span)
				r.setLineage(e)
				if isDeadLetterSend(ctx, e) {
					r.lineage.flags |= deadLetterSend
				}
				t.ring.sends.put(&r)
			}
			if span != nil {
				if span.IsRecording() {
					if err != nil {
						setError(span, err, errType)
					}
					if e.Record != nil {
						span.SetAttributes(appendRecordAttrs(nil, e.Record)...)
					}
				}
				span.End()
			}
			return err
		}
	}
}

func (t *Telemetry) startSend(ctx context.Context, s *sendSeries, e *event.Event) (context.Context, trace.Span) {
	sb := getStartBuf()
	attrs := append(sb.attrs[:0], s.spanAttrs...)
	attrs = append(attrs, t.sendSpan...)
	attrs = appendIDAttrs(attrs, e, !t.inProcess)
	opts := append(sb.opts[:0], spanKindProducer, sb.attributes(attrs))
	opts = appendSendLink(ctx, opts) // link.go: a replay's link to its dead letter
	ctx, span := t.tracer.Start(ctx, s.spanName, opts...)
	sb.put(opts)
	return ctx, span
}

// carry attaches the creation context (sc and ctx's baggage) to e: on the
// event inside the process, in its headers when it leaves.
func (t *Telemetry) carry(ctx context.Context, sc trace.SpanContext, e *event.Event) {
	if !t.inProcess {
		t.inject(ctx, e)
		return
	}
	bag := baggage.FromContext(ctx)
	if sc.IsValid() || bag.Len() > 0 {
		eventmeta.SetCreation(e, &eventmeta.Creation{SpanContext: sc, Baggage: bag})
	}
}

// injectAmbient writes ctx's span context and baggage into the headers of
// an event that leaves the process, when there is something to write.
func (t *Telemetry) injectAmbient(ctx context.Context, e *event.Event) {
	if trace.SpanContextFromContext(ctx).IsValid() || baggage.FromContext(ctx).Len() > 0 {
		t.inject(ctx, e)
	}
}

func (t *Telemetry) inject(ctx context.Context, e *event.Event) {
	if e.Headers == nil {
		e.Headers = make(map[string]string, 3)
	}
	t.prop.Inject(ctx, propagation.MapCarrier(e.Headers))
}

// WithCreation returns ctx carrying e's creation context — the span context
// and baggage it was emitted with — so that a span started under it (the
// dead letter's send span) joins the event's trace. With no tracer that
// records, ctx is returned as is: an event that leaves the process keeps
// the creation context it came with in its headers.
func (t *Telemetry) WithCreation(ctx context.Context, e *event.Event) context.Context {
	if !t.tracing() {
		return ctx
	}
	if c := eventmeta.CreationOf(e); c != nil {
		if c.Baggage.Len() > 0 {
			ctx = baggage.ContextWithBaggage(ctx, c.Baggage)
		}
		if c.SpanContext.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, c.SpanContext)
		}
		return ctx
	}
	if len(e.Headers) > 0 {
		return t.prop.Extract(ctx, propagation.MapCarrier(e.Headers))
	}
	return ctx
}
