package eventstream

import (
	"context"
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

// Backoff of dead-letter writes that fail (a missing topic, a record the
// broker refuses): the event stays unacknowledged meanwhile.
const (
	deadLetterRetryFirst = 100 * time.Millisecond
	deadLetterRetryMax   = 5 * time.Second
)

// deadLetter sends an event whose retries ran out to its dead-letter topic,
// in the event's original trace, so that a subscriber there can inspect or
// replay it. It returns nil once the event is done (dead-lettered, or
// dropped because dead letters are off or it is a dead letter itself), and
// an error when the write could not be made before shutdown: the transport
// then leaves the event unacknowledged.
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
	dl.Headers = make(map[string]string, len(e.Headers)+10)
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
	// The send span's parent is the event's creation context, so every
	// attempt and the dead letter share one trace. The dead letter never
	// waits for room: the event was accepted already, and this worker may
	// be the one a full queue waits for.
	sendCtx := context.WithValue(ctx, publishKey{}, &publishRequest{b, transport.PublishOptions{Overflow: true}})
	if b.obs != nil {
		sendCtx = itel.WithDeadLetter(b.obs.tel.WithCreation(sendCtx, e))
	}
	delay := deadLetterRetryFirst
	for failures := 0; ; failures++ {
		err := b.emit(sendCtx, dl)
		if err == nil {
			break
		}
		if failures%10 == 0 {
			b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: dead-letter write failed; the event stays unacknowledged and the write is retried",
				append(attrs, slog.String("dead_letter_topic", dlqTopic), slog.String("send_error", err.Error()),
					slog.Int("failures", failures+1))...)
		}
		if errors.Is(err, ErrClosed) || !sleepCtx(b.baseCtx, delay) {
			return &deadLetterError{Topic: dlqTopic, Err: err}
		}
		delay = min(2*delay, deadLetterRetryMax)
	}
	b.keepDeadLetter(dl) // for Replay, where the transport cannot read dead letters back
	if s.tel != nil {
		s.tel.RecordDeadLetter(cause)
	}
	b.logger.LogAttrs(ctx, slog.LevelWarn, "eventstream: event dead-lettered",
		append(attrs, slog.String("dead_letter_topic", dlqTopic))...)
	return nil
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
