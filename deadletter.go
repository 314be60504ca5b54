package eventstream

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/middleware"
)

// Headers set on a dead-letter event, beside the original event's own.
const (
	HeaderDeadLetterReason    = "eventstream-dlq-reason"
	HeaderDeadLetterErrorType = "eventstream-dlq-error-type"
	HeaderDeadLetterAttempts  = "eventstream-dlq-attempts"
	HeaderDeadLetterTopic     = "eventstream-dlq-original-topic"
	HeaderDeadLetterID        = "eventstream-dlq-original-id"
	HeaderDeadLetterGroup     = "eventstream-dlq-group"
	HeaderDeadLetterPartition = "eventstream-dlq-original-partition"
	HeaderDeadLetterOffset    = "eventstream-dlq-original-offset"
	HeaderDeadLetterTime      = "eventstream-dlq-time"
	// HeaderDeadLetterCausationID is the original event's causation id,
	// when it had one: the dead letter's own causation id is the original
	// event (its failure caused it), so a replay restores the original's
	// lineage from here.
	HeaderDeadLetterCausationID = "eventstream-dlq-original-causation-id"
)

// Headers set on an event that Replay put back (replay.go).
const (
	// HeaderReplayCount is how often the event was replayed: 1 for the
	// first replay. A dead letter of a replayed event keeps it, so the
	// next replay counts on.
	HeaderReplayCount = "eventstream-replay-count"
	// HeaderReplayGroup, when set, names the one consumer group meant to
	// handle the replayed event (ReplayToGroup); every other group's
	// subscriptions acknowledge it unhandled.
	HeaderReplayGroup = "eventstream-replay-group"
)

// isDeadLetter reports whether e is one of this bus's dead letters: it names
// its original topic, and this bus would dead-letter that topic to e's. A
// foreign record that merely carries the header is an ordinary event.
func (b *bus) isDeadLetter(e *Event) bool {
	orig := e.Headers[HeaderDeadLetterTopic]
	return orig != "" && b.opts.deadLetterTopic != nil && b.opts.deadLetterTopic(orig) == e.Topic
}

// Backoff of dead-letter writes that fail with an error time or an
// operator can fix (a missing topic, an unreachable broker, a denied
// authorization): the event stays unacknowledged meanwhile. The failures
// are logged once per backoff step, at most once per deadLetterLogEvery.
const (
	deadLetterRetryFirst   = 100 * time.Millisecond
	deadLetterRetryMax     = 5 * time.Second
	deadLetterLogEvery     = 5 * time.Second
	deadLetterAttemptLimit = 30 * time.Second // one write, when the cluster does not answer
)

// HeaderDeadLetterValueOmitted is set on a dead letter written without the
// event's value, because the transport refused the record with it (too
// large, invalid): it holds the value's size in bytes. The original topic,
// partition and offset headers say where to fetch it.
const HeaderDeadLetterValueOmitted = "eventstream-dlq-value-omitted"

// deadLetter sends an event whose retries ran out to its dead-letter topic,
// in the event's original trace, so that a subscriber there can inspect or
// replay it. It returns nil once the event is done (dead-lettered, or
// dropped because dead letters are off or it is a dead letter itself), and
// an error when it is not: the transport then leaves the event
// unacknowledged. A write the transport refuses for the record itself is
// made again without the value; one that fails otherwise is retried with
// backoff, on a transport that parks deliveries (Kafka) from a
// *transport.Pending, so that only the event's partition waits, elsewhere
// here, until shutdown.
func (b *bus) deadLetter(ctx context.Context, s *subscription, e *Event, cause error) error {
	attempts := 1
	var re *middleware.RetryError
	if errors.As(cause, &re) {
		attempts, cause = re.Attempts, re.Err
	}
	attrs := []slog.Attr{
		slog.String("topic", e.Topic), slog.String("group", s.group), slog.String("event_id", e.ID),
		slog.Int("attempts", attempts), slog.String("error", cause.Error()),
	}
	if b.opts.deadLetterTopic == nil {
		b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: event dropped after its last attempt (dead letters are off)", attrs...)
		return nil
	}
	if b.isDeadLetter(e) {
		// A dead letter that fails again is not dead-lettered twice: that
		// would loop. It stays logged, with its trace.
		b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: dead-letter event failed; not dead-lettered again", attrs...)
		return nil
	}
	dlqTopic := b.opts.deadLetterTopic(e.Topic)
	dl := event.New(dlqTopic, e.Data)
	dl.Key, dl.Raw = e.Key, e.Raw
	// The dead letter continues the event's chain, caused by the event.
	dl.CausationID, dl.CorrelationID = e.ID, e.CorrelationID
	if dl.CorrelationID == "" {
		dl.CorrelationID = e.ID
	}
	eventmeta.Bind(dl, b.baseCtx)
	dl.Headers = make(map[string]string, len(e.Headers)+11)
	maps.Copy(dl.Headers, e.Headers)
	dl.Headers[HeaderDeadLetterReason] = cause.Error()
	dl.Headers[HeaderDeadLetterErrorType] = itel.ErrorType(cause)
	dl.Headers[HeaderDeadLetterAttempts] = strconv.Itoa(attempts)
	dl.Headers[HeaderDeadLetterTopic] = e.Topic
	dl.Headers[HeaderDeadLetterID] = e.ID
	dl.Headers[HeaderDeadLetterGroup] = s.group
	dl.Headers[HeaderDeadLetterTime] = time.Now().UTC().Format(time.RFC3339Nano)
	if e.CausationID != "" {
		dl.Headers[HeaderDeadLetterCausationID] = e.CausationID
	}
	if e.Record != nil {
		dl.Headers[HeaderDeadLetterPartition] = strconv.Itoa(int(e.Record.Partition))
		dl.Headers[HeaderDeadLetterOffset] = strconv.FormatInt(e.Record.Offset, 10)
	}
	w := &deadLetterWrite{bus: b, sub: s, event: e, dl: dl, cause: cause, attrs: attrs, delay: deadLetterRetryFirst}
	done, err := w.attempt(ctx)
	switch {
	case done:
		return nil
	case err != nil:
		return err
	}
	if _, parks := b.tr.(transport.Parker); parks {
		w.block()
		return &transport.Pending{Delay: w.next(), Retry: func(rctx context.Context) (time.Duration, error) {
			if rctx.Err() != nil {
				w.unblock()
				return 0, &deadLetterError{Topic: dlqTopic, Err: rctx.Err()}
			}
			done, err := w.attempt(rctx)
			switch {
			case done:
				w.unblock()
				return 0, nil
			case err != nil:
				w.unblock()
				return 0, err
			}
			return w.next(), nil
		}}
	}
	for {
		if !sleepCtx(b.baseCtx, w.next()) {
			return &deadLetterError{Topic: dlqTopic, Err: b.baseCtx.Err()}
		}
		if done, err := w.attempt(ctx); done || err != nil {
			return err
		}
	}
}

// deadLetterWrite is one event's dead letter, written in one or more
// attempts.
type deadLetterWrite struct {
	bus      *bus
	sub      *subscription
	event    *Event
	dl       *Event
	cause    error
	attrs    []slog.Attr
	delay    time.Duration
	failures int
	logged   time.Time
	stripped bool
	blocked  bool
}

// attempt writes the dead letter once: done when it was written (or
// dropped: refused even without its value); an error when the write can
// never be made (the bus is closing); neither when it is to be retried.
func (w *deadLetterWrite) attempt(ctx context.Context) (done bool, err error) {
	b := w.bus
	err = w.send(ctx)
	if err != nil && errors.Is(err, transport.ErrRejected) && !w.stripped {
		// Retrying cannot fix the record: write what can be written,
		// every header and where the event lies, without the value.
		w.strip(err)
		err = w.send(ctx)
	}
	switch {
	case err == nil:
		b.keepDeadLetter(w.dl) // for Replay, where the transport cannot read dead letters back
		if w.sub.tel != nil {
			w.sub.tel.RecordDeadLetter(w.cause)
		}
		msg := "eventstream: event dead-lettered"
		if w.stripped {
			msg = "eventstream: event dead-lettered without its value (the record with it was refused)"
		}
		b.logger.LogAttrs(ctx, slog.LevelWarn, msg, append(w.attrs, slog.String("dead_letter_topic", w.dl.Topic))...)
		return true, nil
	case errors.Is(err, transport.ErrRejected):
		b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: dead letter refused even without the event's value; the event is dropped",
			append(w.attrs, slog.String("dead_letter_topic", w.dl.Topic), slog.String("send_error", err.Error()))...)
		return true, nil
	case errors.Is(err, ErrClosed):
		return false, &deadLetterError{Topic: w.dl.Topic, Err: err}
	}
	w.failures++
	if now := time.Now(); now.Sub(w.logged) >= deadLetterLogEvery {
		w.logged = now
		b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: dead-letter write failed; the event stays unacknowledged and its partition waits while the write is retried",
			append(w.attrs, slog.String("dead_letter_topic", w.dl.Topic), slog.String("send_error", err.Error()),
				slog.Int("failures", w.failures), slog.Duration("retry_in", w.delay))...)
	}
	return false, nil
}

// send makes one write, in the event's trace, bounded so that a cluster
// that does not answer cannot hold it forever.
func (w *deadLetterWrite) send(ctx context.Context) error {
	b := w.bus
	ctx, cancel := context.WithTimeout(ctx, deadLetterAttemptLimit)
	defer cancel()
	// The send span's parent is the event's creation context, so every
	// attempt and the dead letter share one trace. The dead letter never
	// waits for room: the event was accepted already, and this worker may
	// be the one a full queue waits for.
	sendCtx := context.WithValue(ctx, publishKey{}, &publishRequest{b, transport.PublishOptions{Overflow: true}})
	if b.obs != nil {
		sendCtx = itel.WithDeadLetter(b.obs.tel.WithCreation(sendCtx, w.event))
	}
	return b.emit(sendCtx, w.dl)
}

// strip drops the dead letter's value and says why.
func (w *deadLetterWrite) strip(refused error) {
	w.stripped = true
	size := len(w.event.Raw)
	if size == 0 && w.event.Data != nil {
		if raw, err := json.Marshal(w.event.Data); err == nil {
			size = len(raw)
		}
	}
	w.dl.Data, w.dl.Raw = nil, []byte{}
	w.dl.Headers[HeaderDeadLetterValueOmitted] = strconv.Itoa(size)
	w.dl.Headers[HeaderDeadLetterReason] = w.cause.Error() + "; the dead letter with the value was refused: " + refused.Error()
}

// next returns the delay before the next attempt and doubles the one after.
func (w *deadLetterWrite) next() time.Duration {
	d := w.delay
	w.delay = min(2*w.delay, deadLetterRetryMax)
	return d
}

// block counts the event as waiting for its dead letter; unblock ends it.
func (w *deadLetterWrite) block() {
	w.blocked = true
	if w.sub.tel != nil {
		w.sub.tel.DeadLetterBlocked(1)
	}
}

func (w *deadLetterWrite) unblock() {
	if w.blocked && w.sub.tel != nil {
		w.sub.tel.DeadLetterBlocked(-1)
	}
	w.blocked = false
}

// deadLetterError: the dead letter could not be written before shutdown.
type deadLetterError struct {
	Topic string
	Err   error
}

func (e *deadLetterError) Error() string {
	return "eventstream: dead letter to " + strconv.Quote(e.Topic) + " not written: " + e.Err.Error()
}
func (e *deadLetterError) Unwrap() error { return e.Err }

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
