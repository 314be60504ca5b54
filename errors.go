package eventstream

import (
	"errors"
	"fmt"
	"strings"

	"libx.net/eventstream/internal/kafka"
	"libx.net/eventstream/internal/memory"
	"libx.net/eventstream/internal/transport"
)

// Sentinel errors. Every error the bus returns wraps one of these, so callers
// test with errors.Is; the typed errors below carry the detail. The one
// exception: Emit given a context that is already done returns the
// context's own error (context.Canceled or context.DeadlineExceeded), as it
// is, before anything happens.
var (
	// ErrClosed: the bus was closed; Emit, On and Off are refused.
	ErrClosed = errors.New("eventstream: bus is closed")
	// ErrInvalidTopic: the topic is empty, too long or has a character
	// outside [a-zA-Z0-9._-] (Kafka's rule, applied in both modes).
	ErrInvalidTopic = errors.New("eventstream: invalid topic")
	// ErrNilHandler: On was given a nil handler.
	ErrNilHandler = errors.New("eventstream: nil handler")
	// ErrInvalidConfig: a Config field or an option has a value the bus
	// cannot work with.
	ErrInvalidConfig = errors.New("eventstream: invalid config")
	// ErrEncode: the event's data cannot be encoded as JSON.
	ErrEncode = errors.New("eventstream: data cannot be encoded")
	// ErrQueueFull: a subscription's queue stayed full until Emit's context
	// was done (memory mode's backpressure).
	ErrQueueFull = errors.New("eventstream: queue full")
	// ErrUnknownSubscription: Off was given a subscription this bus does not
	// know (already removed, or from another bus).
	ErrUnknownSubscription = errors.New("eventstream: unknown subscription")
	// ErrShutdownTimeout: Close gave up waiting for accepted events.
	ErrShutdownTimeout = errors.New("eventstream: shutdown timed out")
	// ErrMQ: an MQAdapter operation failed; the *MQError names it and
	// wraps the adapter's error.
	ErrMQ = errors.New("eventstream: message queue operation failed")
	// ErrNilContext: Emit was given a nil context.
	ErrNilContext = errors.New("eventstream: nil context")
	// ErrKafka: a Kafka operation failed (connect, produce, topic setup,
	// group join); the *KafkaError names it and wraps the broker's error.
	ErrKafka = kafka.ErrKafka
	// ErrReplay: Replay could not re-emit a dead letter; the *ReplayError
	// says which, and the dead letter stays where it was.
	ErrReplay = errors.New("eventstream: dead-letter replay failed")
	// ErrReplayUnsupported: the bus keeps no dead letters to replay or
	// list; the *ReplayUnsupportedError says why.
	ErrReplayUnsupported = errors.New("eventstream: dead-letter replay not supported")
)

// ConfigError names the Config field or option that is wrong. Err, when
// set, is the underlying error (a RetryPolicy's, a franz-go option's), which
// errors.Is and errors.As reach.
type ConfigError struct {
	Field  string
	Reason string
	Err    error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("eventstream: invalid config: %s: %s", e.Field, e.Reason)
}

func (e *ConfigError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidConfig, e.Err}
	}
	return []error{ErrInvalidConfig}
}

// configError wraps err as the reason a field is wrong, without repeating
// the package prefix its message may carry.
func configError(field string, err error) *ConfigError {
	return &ConfigError{Field: field, Reason: strings.TrimPrefix(err.Error(), "eventstream: "), Err: err}
}

// TopicError says why a topic name was refused.
type TopicError struct {
	Topic  string
	Reason string
}

func (e *TopicError) Error() string {
	return fmt.Sprintf("eventstream: invalid topic %q: %s", e.Topic, e.Reason)
}

func (e *TopicError) Unwrap() error { return ErrInvalidTopic }

// EncodeError says which type could not be encoded and why.
type EncodeError struct {
	Type string
	Err  error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("eventstream: data of type %s cannot be encoded as JSON: %v", e.Type, e.Err)
}

func (e *EncodeError) Unwrap() []error { return []error{ErrEncode, e.Err} }

// ShutdownError reports events that Close could not finish before the
// shutdown timeout: accepted but not handled (neither retried nor
// dead-lettered after Close returned). Err, when set, says what else did not
// stop in time (handlers still running). Off returns one too when the last
// member of a group left with events it could not finish in time.
type ShutdownError struct {
	Unhandled int
	Err       error
}

func (e *ShutdownError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("eventstream: shutdown timed out with %d event(s) not handled: %v", e.Unhandled, e.Err)
	}
	return fmt.Sprintf("eventstream: shutdown timed out with %d event(s) not handled", e.Unhandled)
}

func (e *ShutdownError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrShutdownTimeout, e.Err}
	}
	return []error{ErrShutdownTimeout}
}

// GoexitError is the failure of a handler that ended its goroutine
// (runtime.Goexit, as testing's FailNow does) instead of returning. The
// goroutine is gone, so the event is not retried: it is dead-lettered.
type GoexitError struct{}

func (*GoexitError) Error() string {
	return "eventstream: handler ended its goroutine (runtime.Goexit) instead of returning"
}

// QueueFullError reports the consumer group whose queue stayed full until
// Emit's context was done. Emit waits for room in every group's queue before
// it enqueues, so the event reached no group (unless the group's membership
// changed while it waited).
type QueueFullError struct {
	Topic string
	Group string
	Err   error // the context's error
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("eventstream: queue of group %q on topic %q stayed full: %v", e.Group, e.Topic, e.Err)
}

func (e *QueueFullError) Unwrap() []error { return []error{ErrQueueFull, e.Err} }

// fromTransport converts an error of the transport into the bus's: the one
// place where the errors of internal packages enter the root, so that a
// caller's errors.Is and errors.As see one family. Errors that already are
// the root's (KafkaError and DecodeError by alias, MQError made by the
// adapter's driver in this package) pass unchanged.
func fromTransport(err error) error {
	if err == nil {
		// Before the targets of errors.As below, which escape: declared
		// first, they would cost every Emit and delivery an allocation each.
		return nil
	}
	var (
		full      *memory.FullError
		enc       *kafka.EncodeError
		unhandled *transport.UnhandledError
	)
	switch {
	case err == transport.ErrClosed:
		return ErrClosed
	case errors.Is(err, transport.ErrClosed):
		// The transport's reason (a record Close failed to flush, say)
		// stays readable beside ErrClosed.
		return errors.Join(ErrClosed, err)
	case errors.Is(err, transport.ErrGoexit):
		return &GoexitError{}
	case errors.As(err, &full):
		return &QueueFullError{Topic: full.Topic, Group: full.Group, Err: full.Err}
	case errors.As(err, &enc):
		return &EncodeError{Type: enc.Type, Err: enc.Err}
	case errors.As(err, &unhandled):
		return &ShutdownError{Unhandled: unhandled.Unhandled}
	}
	return err
}

// ReplayError reports the dead letters Replay could not re-emit: how many,
// and the first one's original id and topic with its error (Err).
type ReplayError struct {
	Failed int
	ID     string
	Topic  string
	Err    error
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("eventstream: %d dead letter(s) not replayed; the first, event %q of topic %q: %v", e.Failed, e.ID, e.Topic, e.Err)
}

func (e *ReplayError) Unwrap() []error { return []error{ErrReplay, e.Err} }

// ReplayUnsupportedError says why a bus has no dead letters to replay.
type ReplayUnsupportedError struct{ Reason string }

func (e *ReplayUnsupportedError) Error() string {
	return "eventstream: dead-letter replay not supported: " + e.Reason
}

func (e *ReplayUnsupportedError) Unwrap() error { return ErrReplayUnsupported }

// ValueOmittedError is why Replay skips a dead letter written without its
// value (the broker refused the original record's size even for the
// dead-letter topic): the value is still in the original topic, at
// Partition and Offset, for as long as that topic retains it.
type ValueOmittedError struct {
	Topic     string
	Partition int32
	Offset    int64
	Size      int
}

func (e *ValueOmittedError) Error() string {
	return fmt.Sprintf("eventstream: dead letter carries no value (%d bytes omitted); read it from topic %q, partition %d, offset %d",
		e.Size, e.Topic, e.Partition, e.Offset)
}
