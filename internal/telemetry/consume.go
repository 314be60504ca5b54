package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
	"libx.net/eventstream/telemetry"
)

// Subscription is the telemetry of one subscription: its group's series,
// its process span name and static attributes, built once.
type Subscription struct {
	t       *Telemetry
	g       *groupSeries
	labels  labels
	private bool

	spanName  string
	spanAttrs []attribute.KeyValue // system, operation type/name, destination, group, subscription
	queueObs  metric.ObserveOption // base set + subscription
}

// Subscription returns the telemetry of subscription name of group on
// topic; private says the group is the subscription's alone.
func (t *Telemetry) Subscription(topic, group, name string, private bool) *Subscription {
	g := t.reg.group(topic, group)
	s := &Subscription{
		t: t, g: g, private: private,
		labels:   labels{topic: topic, group: group, subscription: name},
		spanName: telemetry.OperationProcess + " " + topic,
		spanAttrs: []attribute.KeyValue{
			semconv.MessagingSystemKey.String(t.system),
			semconv.MessagingOperationTypeKey.String(telemetry.OperationProcess),
			semconv.MessagingOperationName(telemetry.OperationProcess),
			semconv.MessagingDestinationName(topic),
			semconv.MessagingConsumerGroupName(group),
			keySubscription.String(name),
		},
	}
	s.queueObs = metric.WithAttributeSet(attribute.NewSet(
		append(g.baseKVs[:len(g.baseKVs):len(g.baseKVs)], keySubscription.String(name))...))
	return s
}

// Forget drops the series of a subscription without a group when it ends
// (its counts move to the EndedPrivateGroups series); for a named group it
// does nothing, as the group's totals outlive its members.
func (s *Subscription) Forget() {
	if s.private {
		s.t.reg.forget(s.g)
	}
}

// Consume returns the consume chain's measurement point for whole
// deliveries, outside retry: it counts messaging.client.consumed.messages
// once per delivery (not again when it resumes after a wait) and keeps eventstream.in_flight
// up while the delivery, retries included, is under way. An attempt that
// ends in a retryPending error (a retry waiting out its backoff) leaves the
// event in flight; a later attempt, or EndDelivery, ends it.
func (s *Subscription) Consume(next event.Handler) event.Handler {
	t, g := s.t, s.g
	return func(ctx context.Context, e *event.Event) error {
		if !t.counting() {
			return next(ctx, e)
		}
		if !eventmeta.Resumed(ctx) {
			g.consumed.Add(1)
			g.inFlight.Add(1)
		}
		pending := false
		// Deferred, so that a handler that ends its goroutine
		// (runtime.Goexit) does not leave the event in flight.
		defer func() {
			if !pending {
				g.inFlight.Add(-1)
			}
		}()
		err := next(ctx, e)
		_, pending = err.(retryPending)
		return err
	}
}

// retryPending is the bus's word that a delivery goes on: a retry waits
// out its backoff (transport.Again; not imported, as it would bring the
// pool's package and its import-time state here).
type retryPending interface{ RetryPending() }

// EndDelivery ends a delivery whose retry was waiting when the transport
// gave it up (the subscription left, the bus closed): it is no longer in
// flight.
func (s *Subscription) EndDelivery() {
	if s.t.counting() {
		s.g.inFlight.Add(-1)
	}
}

// Process returns the consume chain's measurement point for each handler
// attempt, inside retry: the process span ("process {topic}", CONSUMER,
// child of the event's creation context; an ambient span in ctx becomes a
// link; with LinksOnly a new root linked to the creation context), with
// the creation context's baggage in the handler's ctx;
// messaging.process.duration (error.type on failure); the history's process
// entry. A failure sets the span's status and error.type; a recovered panic
// adds a span event with its stack.
//
// The first attempt also records eventstream.delivery.latency, the event's
// age when its processing starts, from the same clock read as the attempt's
// start. An emit time ahead of the clock (another host's clock, skewed)
// records 0 and counts in eventstream.delivery.clock_skew, so that a
// histogram's sum never goes down.
func (s *Subscription) Process(next event.Handler) event.Handler {
	t := s.t
	return func(ctx context.Context, e *event.Event) error {
		tracing := t.tracing()
		histOn := t.inst.processDuration.Enabled(ctx)
		delivOn := t.inst.deliveryLatency.Enabled(ctx)
		if !tracing && !histOn && !delivOn && !t.stats && t.ring == nil {
			return next(ctx, e) // nobody looks
		}
		attempt := event.Attempt(ctx)
		var span trace.Span
		if tracing {
			ctx, span = s.startProcess(ctx, e, attempt)
		}
		start := startOf(e)
		if attempt == 1 && e.Redelivery == 0 && (delivOn || t.stats) && !e.Time.IsZero() {
			s.recordDelivery(ctx, e, start, delivOn)
		}

		// A handler that ends its goroutine (runtime.Goexit) never returns
		// here; its attempt failed all the same, and is measured as one.
		returned := false
		defer func() {
			if !returned {
				s.endProcess(ctx, e, span, start, attempt, histOn, t.goexit)
			}
		}()
		err := next(ctx, e)
		returned = true
		s.endProcess(ctx, e, span, start, attempt, histOn, err)
		return err
	}
}

// endProcess measures the end of one attempt, which started at start.
func (s *Subscription) endProcess(ctx context.Context, e *event.Event, span trace.Span, start time.Time, attempt int, histOn bool, err error) {
	t, g := s.t, s.g
	dur := time.Since(start) // monotonic
	var requeue *event.RequeueError
	if err != nil {
		// A hand-back is not a failure: measured as an attempt without
		// error.type, noted on the span and in the history.
		if requeue, _ = event.IsRequeue(err); requeue != nil {
			err = nil
		}
	}
	var errType string
	if err != nil {
		errType = ErrorType(err)
	}
	if t.stats {
		switch {
		case requeue != nil: // neither: counted as requeued by the bus
		case err == nil:
			g.succeeded.Add(1)
		default:
			g.failed.Add(1)
		}
		g.process.record(dur)
	}
	if histOn {
		rec := g.procRec
		if err != nil {
			rec = g.procErrs.get(errType, g.procKVs).rec
		}
		t.inst.processDuration.Record(ctx, dur.Seconds(), rec...)
	}
	if t.ring != nil {
		r := record{labels: &s.labels, op: opProcess, attempt: int32(attempt),
			start: start.UnixNano(), dur: dur}
		r.fill(e.ID, err, span)
		r.setRedelivery(e, requeue)
		r.setLineage(e)
		t.ring.processes.put(&r)
	}
	if span != nil {
		if err != nil && span.IsRecording() {
			setError(span, err, errType)
			addPanicEvent(span, err, errType)
		}
		if requeue != nil && span.IsRecording() {
			addRequeueEvent(span, requeue)
		}
		span.End()
	}
}

// recordDelivery records the delivery latency of e, whose processing
// started at start.
func (s *Subscription) recordDelivery(ctx context.Context, e *event.Event, start time.Time, histOn bool) {
	t, g := s.t, s.g
	// Monotonic for an event made in this process; wall-clock times for one
	// that came from elsewhere.
	d := start.Sub(e.Time)
	if d < 0 {
		d = 0
		if t.counting() {
			g.skewed.Add(1)
		}
	}
	if t.stats {
		g.delivery.record(d)
	}
	if histOn {
		t.inst.deliveryLatency.Record(ctx, d.Seconds(), g.baseRec...)
	}
}

func (s *Subscription) startProcess(ctx context.Context, e *event.Event, attempt int) (context.Context, trace.Span) {
	t := s.t
	ambient := trace.SpanContextFromContext(ctx)
	base := ctx
	var creation trace.SpanContext
	if c := eventmeta.CreationOf(e); c != nil {
		creation = c.SpanContext
		if c.Baggage.Len() > 0 {
			base = baggage.ContextWithBaggage(base, c.Baggage)
		}
		if creation.IsValid() && !t.linksOnly {
			base = trace.ContextWithSpanContext(base, creation)
		}
	} else if len(e.Headers) > 0 {
		if ambient.IsValid() {
			// Hide the ambient span from Extract, so that "no creation
			// context" is told apart from "the ambient one".
			base = trace.ContextWithSpanContext(base, trace.SpanContext{})
		}
		base = t.prop.Extract(base, propagation.MapCarrier(e.Headers))
		creation = trace.SpanContextFromContext(base)
	}

	sb := getStartBuf()
	attrs := append(sb.attrs[:0], s.spanAttrs...)
	attrs = append(attrs, keyAttempt.Int(attempt))
	if e.Redelivery > 0 {
		attrs = append(attrs, keyRedelivery.Int(e.Redelivery))
	}
	kafka := !t.inProcess && e.Record != nil
	if kafka {
		attrs = appendRecordAttrs(attrs, e.Record)
	}
	attrs = appendIDAttrs(attrs, e, kafka)
	opts := append(sb.opts[:0], spanKindConsumer, sb.attributes(attrs))
	switch {
	case !creation.IsValid():
		opts = append(opts, newRoot)
	case t.linksOnly:
		opts = append(opts, newRoot, trace.WithLinks(trace.Link{SpanContext: creation}))
	}
	if ambient.IsValid() && !ambient.Equal(creation) {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: ambient}))
	}
	ctx, span := t.tracer.Start(base, s.spanName, opts...)
	sb.put(opts)
	return ctx, span
}

// RecordRequeue counts an event a handler handed back (eventstream.requeues).
func (s *Subscription) RecordRequeue() {
	if s.t.counting() {
		s.g.requeued.Add(1)
	}
}

// RecordRetry counts a failed attempt that will be retried
// (eventstream.retries).
func (s *Subscription) RecordRetry() {
	if s.t.counting() {
		s.g.retried.Add(1)
	}
}

// RecordDeadLetter counts an event sent to its dead-letter topic
// (eventstream.dead_letters, with error.type of its last failure).
func (s *Subscription) RecordDeadLetter(err error) {
	if s.t.counting() {
		s.g.dead.get(ErrorType(err), s.g.baseKVs).n.Add(1)
	}
}

// DeadLetterBlocked counts an event whose dead letter waits (delta 1)
// or no longer does (delta -1): eventstream.dead_letter.blocked, and the
// event stays in eventstream.in_flight meanwhile.
func (s *Subscription) DeadLetterBlocked(delta int64) {
	if s.t.counting() {
		s.g.blocked.Add(delta)
		s.g.inFlight.Add(delta)
	}
}

// ObserveQueueDepth reports f() as the subscription's
// eventstream.queue.depth at each collection, until unregister is called.
func (s *Subscription) ObserveQueueDepth(f func() int64) (unregister func()) {
	g, opt := s.t.inst.queueDepth, s.queueObs
	return s.t.register(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(g, f(), opt)
		return nil
	}, g)
}
