package eventstream

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/event"
	"libx.net/eventstream/history"
	"libx.net/eventstream/internal/eventmeta"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/internal/transport"
)

// DeadLetter is one dead letter as ListDeadLetters and the debug page show
// it; see history.DeadLetter.
type DeadLetter = history.DeadLetter

// DeadLetterFilter selects dead letters by original topic, consumer group,
// error type, time dead-lettered and original id; see
// history.DeadLetterFilter.
type DeadLetterFilter = history.DeadLetterFilter

// ReplayResult counts what Replay did; see history.ReplayResult.
type ReplayResult = history.ReplayResult

// ReplayOutcome is what Replay did with one dead letter.
type ReplayOutcome string

// ReplayOutcome values.
const (
	ReplayOutcomeReplayed ReplayOutcome = "replayed" // re-emitted (with ReplayDryRun: would be)
	ReplayOutcomeSkipped  ReplayOutcome = "skipped"  // left out by the filter, or not replayable
	ReplayOutcomeFailed   ReplayOutcome = "failed"   // the re-emit failed; the dead letter stays
)

// ReplayOption configures one Replay. Options are applied in order.
type ReplayOption interface{ applyReplay(*replayOptions) }

type replayOptions struct {
	toGroup       string
	consumerGroup string
	dryRun        bool
	limit         int
	observe       func(DeadLetter, ReplayOutcome, error)
}

type replayOptionFunc func(*replayOptions)

func (f replayOptionFunc) applyReplay(o *replayOptions) { f(o) }

// ReplayToGroup delivers each replayed event to one consumer group of its
// topic only: the event carries HeaderReplayGroup, and the subscriptions
// of every other group acknowledge it without handling it (nothing is
// counted for them). In both modes the event is written to its topic as
// any event is (on Kafka a record reaches every group; only the header
// keeps the others out), so consumers of other processes must run a
// version of this library that knows the header. Default: every group.
func ReplayToGroup(group string) ReplayOption {
	return replayOptionFunc(func(o *replayOptions) { o.toGroup = group })
}

// ReplayConsumerGroup names the Kafka consumer group whose committed
// offsets record how far replays of the dead-letter topic got, so that
// the next Replay, in any process, resumes there. The group has no
// members: run one Replay per group at a time. Default: "<dead-letter
// topic>.replay". Memory mode has no groups here: a replayed dead letter
// leaves the bus's store.
func ReplayConsumerGroup(name string) ReplayOption {
	return replayOptionFunc(func(o *replayOptions) { o.consumerGroup = name })
}

// ReplayDryRun emits nothing and commits nothing: the result (and the
// observer) say what would be replayed. Default: off.
func ReplayDryRun() ReplayOption {
	return replayOptionFunc(func(o *replayOptions) { o.dryRun = true })
}

// ReplayLimit stops after n dead letters were replayed (n > 0); the rest
// stay for the next Replay. Default: no limit.
func ReplayLimit(n int) ReplayOption {
	return replayOptionFunc(func(o *replayOptions) { o.limit = n })
}

// ReplayObserver calls f for each dead letter read, with what was done
// and, for a failure or a skip that has a reason (a *ValueOmittedError),
// why: for progress reports or a dry run's listing.
// Calls are one at a time, not necessarily on Replay's goroutine: on Kafka
// a replay's outcome is the broker's acknowledgement, and many replays are
// under way at once. Default: none.
func ReplayObserver(f func(d DeadLetter, outcome ReplayOutcome, err error)) ReplayOption {
	return replayOptionFunc(func(o *replayOptions) { o.observe = f })
}

// Replay puts dead letters back: it reads deadLetterTopic, and re-emits each
// dead letter that filter selects to its original topic, with its
// original id (so that idempotent handlers recognise it), its key, data
// and headers, and HeaderReplayCount one higher than the dead letter's. The
// send span of each replayed event is a child of ctx's span (if any) and
// links to the dead letter's trace.
//
// Kafka: Replay reads the topic from the committed offsets of its own
// consumer group (ReplayConsumerGroup) up to the end offsets it finds when
// it starts, and commits past each dead letter replayed or left out by
// the filter, so the next Replay resumes there — in this process or
// another; a filter's skipped dead letters are committed past too (replay
// those with another group). Up to 1000 re-emits are under way at once. A
// dead letter whose re-emit fails is not committed past: its partition
// stops there, and the next Replay tries it again (with those of its
// partition that were under way after it). Memory mode: the bus keeps the most recent dead letters
// (MemoryConfig.DeadLetterStoreSize); a replayed one leaves that store,
// one left out or failed stays.
//
// The result counts what was replayed, skipped and failed. The error is a
// *ReplayError when a re-emit failed (errors.Is ErrReplay), ctx's error
// when it ended first, ErrReplayUnsupported when the bus keeps no dead
// letters (WithoutDeadLetter, the store turned off, an MQ adapter without
// a store), or a *KafkaError when the topic could not be read.
func Replay(ctx context.Context, eb EventBus, deadLetterTopic string, filter DeadLetterFilter, opts ...ReplayOption) (ReplayResult, error) {
	b, src, err := deadLetterSourceOf(eb, deadLetterTopic)
	if err != nil {
		return ReplayResult{}, err
	}
	var o replayOptions
	for _, opt := range opts {
		if opt == nil {
			return ReplayResult{}, &ConfigError{Field: "ReplayOption", Reason: "nil option"}
		}
		opt.applyReplay(&o)
	}
	if o.toGroup != "" {
		if err := validateTopic(o.toGroup); err != nil {
			return ReplayResult{}, &ConfigError{Field: "ReplayToGroup", Reason: "group " + strconv.Quote(o.toGroup) + " is not a valid name"}
		}
	}
	if o.limit < 0 {
		return ReplayResult{}, &ConfigError{Field: "ReplayLimit", Reason: "must not be negative"}
	}
	if o.consumerGroup == "" {
		o.consumerGroup = deadLetterTopic + ".replay"
	}
	var (
		mu      sync.Mutex // guards res, rerr, started and over; serializes o.observe
		res     = ReplayResult{DryRun: o.dryRun}
		rerr    *ReplayError
		started int
		over    bool // Replay returned: a late outcome is not reported
	)
	// finish records what became of one dead letter and tells the reader.
	finish := func(d DeadLetter, outcome ReplayOutcome, err error, done func(transport.Visit)) {
		mu.Lock()
		if over {
			mu.Unlock()
			done(transport.VisitStop)
			return
		}
		switch outcome {
		case ReplayOutcomeReplayed:
			res.Replayed++
		case ReplayOutcomeSkipped:
			res.Skipped++
		case ReplayOutcomeFailed:
			res.Failed++
			if rerr == nil {
				rerr = &ReplayError{ID: d.ID, Topic: d.Topic, Err: err}
			}
		}
		if o.observe != nil {
			o.observe(d, outcome, err)
		}
		mu.Unlock()
		switch {
		case outcome == ReplayOutcomeFailed:
			done(transport.VisitStop)
		case outcome == ReplayOutcomeReplayed && !o.dryRun:
			done(transport.VisitDone)
		default:
			done(transport.VisitPassed)
		}
	}
	// visit runs on the reader's goroutine; a replay's outcome comes
	// later, from the transport, so that many are under way at once (the
	// reader bounds how many).
	visit := func(dl *Event, done func(transport.Visit)) {
		d := b.describeDeadLetter(deadLetterTopic, dl)
		switch {
		case d.Topic == "" || !filter.Match(d):
			finish(d, ReplayOutcomeSkipped, nil, done)
			return
		case d.ValueOmitted > 0:
			// Re-emitting it would publish an empty event under the
			// original's id: skipped, and the observer told where the
			// value is. The dead letter itself stays in its topic.
			finish(d, ReplayOutcomeSkipped, &ValueOmittedError{Topic: d.Topic,
				Partition: d.OriginalPartition, Offset: d.OriginalOffset, Size: d.ValueOmitted}, done)
			return
		case o.limit > 0:
			mu.Lock()
			full := started >= o.limit
			if !full {
				started++
			}
			mu.Unlock()
			if full {
				done(transport.VisitStop) // not done: left for the next Replay
				return
			}
		}
		if o.dryRun {
			finish(d, ReplayOutcomeReplayed, nil, done)
			return
		}
		b.replayOne(ctx, dl, d, o.toGroup, func(err error) {
			if err != nil {
				finish(d, ReplayOutcomeFailed, err, done)
			} else {
				finish(d, ReplayOutcomeReplayed, nil, done)
			}
		})
	}
	err = src.ReadDeadLetters(ctx, transport.DeadLetterRead{
		Topic: deadLetterTopic, Group: o.consumerGroup, Commit: !o.dryRun, Visit: visit,
	})
	mu.Lock()
	over = true
	mu.Unlock()
	if rerr != nil {
		rerr.Failed = res.Failed
		return res, errors.Join(rerr, err)
	}
	if err == nil {
		err = ctx.Err()
	}
	return res, err
}

// ListDeadLetters returns up to n (all when n <= 0) of the dead letters in
// deadLetterTopic that filter selects, newest first. It reads without
// moving anything: on Kafka, the whole topic as it stands when it starts,
// with no consumer group. Its errors are Replay's, but for ReplayError.
func ListDeadLetters(ctx context.Context, eb EventBus, deadLetterTopic string, filter DeadLetterFilter, n int) ([]DeadLetter, error) {
	b, src, err := deadLetterSourceOf(eb, deadLetterTopic)
	if err != nil {
		return nil, err
	}
	return b.listDeadLetters(ctx, src, deadLetterTopic, filter, n, 0)
}

func (b *bus) listDeadLetters(ctx context.Context, src transport.DeadLetterReader, topic string, filter DeadLetterFilter, n int, last int64) ([]DeadLetter, error) {
	var out []DeadLetter
	newestFirst := func() {
		slices.SortStableFunc(out, func(x, y DeadLetter) int { return y.Time.Compare(x.Time) })
		if n > 0 && len(out) > n {
			clear(out[n:])
			out = out[:n]
		}
	}
	err := src.ReadDeadLetters(ctx, transport.DeadLetterRead{Topic: topic, Last: last, Visit: func(dl *Event, done func(transport.Visit)) {
		if d := b.describeDeadLetter(topic, dl); d.Topic != "" && filter.Match(d) {
			out = append(out, d)
			if n > 0 && len(out) >= 2*n {
				newestFirst() // a long topic never holds more than 2n in memory
			}
		}
		done(transport.VisitPassed)
	}})
	newestFirst()
	return out, err
}

// deadLetterSourceOf finds where eb keeps the dead letters of topic.
func deadLetterSourceOf(eb EventBus, topic string) (*bus, transport.DeadLetterReader, error) {
	b, ok := eb.(*bus)
	if !ok || b == nil {
		return nil, nil, &ReplayUnsupportedError{Reason: "not a bus of this package"}
	}
	if err := validateTopic(topic); err != nil {
		return nil, nil, err
	}
	if r, ok := b.tr.(transport.DeadLetterReader); ok {
		return b, r, nil
	}
	if b.opts.deadLetterTopic == nil {
		return nil, nil, &ReplayUnsupportedError{Reason: "dead letters are off (WithoutDeadLetter)"}
	}
	if b.dlStore == nil {
		return nil, nil, &ReplayUnsupportedError{Reason: "the dead-letter store is off (MemoryConfig.DisableDeadLetterStore)"}
	}
	return b, b.dlStore, nil
}

// replayOne re-emits the dead letter dl (described by d) to its original
// topic and calls done once with the outcome: on Kafka, the broker's
// acknowledgement, from the producer's goroutine.
func (b *bus) replayOne(ctx context.Context, dl *Event, d DeadLetter, toGroup string, done func(error)) {
	if b.closed.Load() {
		done(ErrClosed)
		return
	}
	if err := validateTopic(d.Topic); err != nil {
		done(err)
		return
	}
	e := event.New(d.Topic, dl.Data)
	e.ID, e.Key, e.Raw = d.ID, dl.Key, dl.Raw
	// The original event's lineage: the dead letter's correlation id is
	// the original's, and it kept the original's causation id aside.
	e.CausationID, e.CorrelationID = dl.Headers[HeaderDeadLetterCausationID], dl.CorrelationID
	if e.CorrelationID == "" {
		e.CorrelationID = e.ID
	}
	e.Headers = make(map[string]string, len(dl.Headers)+1)
	for k, v := range dl.Headers {
		// The dead letter's own details and its trace context stay behind:
		// the replay is a send of its own, linked to that trace.
		if strings.HasPrefix(k, deadLetterHeaderPrefix) || k == "traceparent" || k == "tracestate" {
			continue
		}
		e.Headers[k] = v
	}
	eventmeta.Bind(e, b.baseCtx) // its handlers' context, built with it
	e.Headers[HeaderReplayCount] = strconv.Itoa(d.ReplayCount + 1)
	delete(e.Headers, HeaderReplayGroup)
	if toGroup != "" {
		e.Headers[HeaderReplayGroup] = toGroup
	}
	ctx = itel.WithSendLink(ctx, b.deadLetterSpanContext(dl))
	ctx = context.WithValue(ctx, publishKey{}, &publishRequest{b, transport.PublishOptions{Done: func(err error) {
		done(err)
	}}})
	if err := b.emit(ctx, e); err != nil {
		done(err) // the transport calls Done only when Publish succeeded
	}
}

// deadLetterHeaderPrefix starts every HeaderDeadLetter* name.
const deadLetterHeaderPrefix = "eventstream-dlq-"

// deadLetterSpanContext is the span context the dead letter carries: its
// send span's, in the original event's trace.
func (b *bus) deadLetterSpanContext(dl *Event) trace.SpanContext {
	if c := eventmeta.CreationOf(dl); c != nil {
		return c.SpanContext
	}
	if len(dl.Headers) == 0 {
		return trace.SpanContext{}
	}
	var prop propagation.TextMapPropagator = propagation.TraceContext{}
	if b.opts.propagator != nil {
		prop = b.opts.propagator
	}
	return trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier(dl.Headers)))
}

// describeDeadLetter reads dl's headers. Topic is empty for a record that
// is not a dead letter (it names no original topic).
func (b *bus) describeDeadLetter(topic string, dl *Event) DeadLetter {
	h := dl.Headers
	d := DeadLetter{
		ID: h[HeaderDeadLetterID], Topic: h[HeaderDeadLetterTopic], DeadLetterTopic: topic,
		Group: h[HeaderDeadLetterGroup], Reason: h[HeaderDeadLetterReason], ErrorType: h[HeaderDeadLetterErrorType],
		Key: dl.Key, Partition: -1, Offset: -1, Time: dl.Time,
	}
	if d.ID == "" {
		d.ID = dl.ID
	}
	d.Attempts, _ = strconv.Atoi(h[HeaderDeadLetterAttempts])
	d.ReplayCount, _ = strconv.Atoi(h[HeaderReplayCount])
	if t, err := time.Parse(time.RFC3339Nano, h[HeaderDeadLetterTime]); err == nil {
		d.Time = t
	}
	if sc := b.deadLetterSpanContext(dl); sc.HasTraceID() {
		d.TraceID = sc.TraceID().String()
	}
	if dl.Record != nil {
		d.Partition, d.Offset = dl.Record.Partition, dl.Record.Offset
	}
	if n, err := strconv.Atoi(h[HeaderDeadLetterValueOmitted]); err == nil {
		d.ValueOmitted = n
		p, _ := strconv.ParseInt(h[HeaderDeadLetterPartition], 10, 32)
		d.OriginalPartition = int32(p)
		d.OriginalOffset, _ = strconv.ParseInt(h[HeaderDeadLetterOffset], 10, 64)
	}
	switch {
	case dl.Raw != nil && json.Valid(dl.Raw):
		d.Data = string(dl.Raw)
	case dl.Raw != nil:
		q, _ := json.Marshal(string(dl.Raw))
		d.Data = string(q)
	default:
		if j, err := json.Marshal(dl.Data); err == nil {
			d.Data = string(j)
		}
	}
	return d
}

// skipReplayFor reports whether e is a replay meant for another consumer
// group than s's (ReplayToGroup): s acknowledges it without handling it.
// The dead letter of such a replay keeps the header, and is for every
// subscriber of its dead-letter topic.
func skipReplayFor(s *subscription, e *Event) bool {
	if len(e.Headers) == 0 {
		return false
	}
	g, ok := e.Headers[HeaderReplayGroup]
	return ok && g != s.group && !s.bus.isDeadLetter(e)
}

// debugSource's dead-letter view (history.DeadLetterSource).

// pageDeadLetters is how many records of each Kafka dead-letter partition
// the debug page reads: the most recent.
const pageDeadLetters = 1000

func (d debugSource) DeadLetters(ctx context.Context, f history.DeadLetterFilter, n int) ([]history.DeadLetter, error) {
	b := d.b
	var topics []string
	switch {
	case b.opts.deadLetterTopic == nil:
		return nil, nil
	case b.dlStore != nil:
		return b.dlStore.list(b, f, n), nil
	case f.Topic != "":
		topics = []string{b.opts.deadLetterTopic(f.Topic)}
	default:
		// The dead-letter topics of the topics subscribed to, but for those
		// that are dead-letter topics themselves.
		subscribed := b.Topology().Topics
		dlqs := map[string]bool{}
		for _, t := range subscribed {
			dlqs[b.opts.deadLetterTopic(t.Name)] = true
		}
		for _, t := range subscribed {
			if dlq := b.opts.deadLetterTopic(t.Name); !dlqs[t.Name] && !slices.Contains(topics, dlq) {
				topics = append(topics, dlq)
			}
		}
	}
	src, ok := b.tr.(transport.DeadLetterReader)
	if !ok {
		return nil, nil
	}
	var out []DeadLetter
	for _, t := range topics {
		dls, err := b.listDeadLetters(ctx, src, t, f, n, pageDeadLetters)
		if err != nil {
			return nil, err
		}
		out = append(out, dls...)
	}
	slices.SortStableFunc(out, func(x, y DeadLetter) int { return y.Time.Compare(x.Time) })
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func (d debugSource) ReplayDeadLetters(ctx context.Context, f history.DeadLetterFilter, toGroup string) (history.ReplayResult, error) {
	if d.b.opts.deadLetterTopic == nil {
		return ReplayResult{}, &ReplayUnsupportedError{Reason: "dead letters are off (WithoutDeadLetter)"}
	}
	var opts []ReplayOption
	if toGroup != "" {
		opts = append(opts, ReplayToGroup(toGroup))
	}
	return Replay(ctx, d.b, d.b.opts.deadLetterTopic(f.Topic), f, opts...)
}
