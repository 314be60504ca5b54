// Package transport is the contract between the bus and the transports that
// move its events (memory, Kafka, an MQ adapter).
//
// The bus owns everything that must mean the same in every mode:
// validation, the middleware chains, retries, dead letters and telemetry.
// A transport only moves events and reports what happened to them; it gets
// what it needs from the bus in a Host and a Sub, never the bus itself.
package transport

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/metric"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
)

// Host is what the bus lends a transport.
type Host struct {
	// Logger is the bus's logger (trace ids added).
	Logger *slog.Logger
	// BaseCtx is the parent of the contexts handlers run under (one per
	// subscription or partition, which the transport cancels when that
	// subscription leaves past ShutdownTimeout, or the partition is
	// revoked); it is cancelled when Close's timeout runs out.
	BaseCtx context.Context
	// ShutdownTimeout bounds Off's and Close's waits.
	ShutdownTimeout time.Duration
	// QueueSize bounds, per lane, the events queued or in hand.
	QueueSize int
	// Sched runs every handler of the bus, fairly across lanes.
	Sched *lanes.Scheduler
	// MeterProvider is where client-level metrics go (nil: telemetry off).
	MeterProvider metric.MeterProvider
}

// Sub is one subscription as a transport sees it.
type Sub struct {
	ID    string
	Topic string
	Group string
	// Private: the group was generated for this subscription alone.
	Private     bool
	Concurrency int
	// DeadLetterUndecodable: an event whose value the transport could not
	// decode (a value that is not JSON) goes to the dead-letter topic
	// without reaching the handler, unless it is a dead letter itself.
	// False: the handler gets it (Data nil, the bytes in Raw).
	DeadLetterUndecodable bool
	// Deliver runs the consume chain for e (and, when it gives up, the dead
	// letter). failure, when not nil, says why the transport could not hand
	// e to the handler (a value it could not decode, a handler that ended
	// its goroutine): the bus then decides between delivering and
	// dead-lettering.
	// Deliver returns nil once e is done and may be acknowledged; an error
	// means it is not (the bus is shutting down, a dead letter could not be
	// written) and the transport must not acknowledge it. An *Again error
	// asks for e to be delivered again later, by the same lane.
	Deliver func(ctx context.Context, e *event.Event, failure error) error
	// Left, when not nil, is called once after Unsubscribe(s), when s's
	// last handler has returned and nothing more will be delivered to it:
	// an Unsubscribe called from a handler returns before that.
	Left func()
}

// PublishOptions say how one event is published.
type PublishOptions struct {
	// Done, when not nil, makes Publish return once the transport has
	// taken the event; Done is then called exactly once with the outcome
	// (nil once stored). It is not called when Publish returns an error.
	Done func(error)
	// Overflow publishes without waiting for room in bounded queues: for
	// dead letters and events emitted from handlers, which may run on the
	// very worker a full queue waits for.
	Overflow bool
}

// Transport moves events. Every method is safe for concurrent use.
type Transport interface {
	// System is the messaging.system value, lower case.
	System() string
	// Publish hands e to every consumer group of its topic.
	Publish(ctx context.Context, e *event.Event, o PublishOptions) error
	// Subscribe starts delivering to s; it returns once s is live.
	Subscribe(s *Sub) error
	// Unsubscribe stops delivery to s: new events stop at once, those
	// accepted for it are handled (within the host's ShutdownTimeout; the
	// rest go to the group's other members), and it returns once s's
	// handlers are done. Called from a handler (which may hold the worker
	// s's queue waits for), it waits only for s's handlers in flight, the
	// caller excepted, and s finishes in the background; s.Left says when.
	Unsubscribe(s *Sub) error
	// Drain waits until every accepted event is handled or ctx is done, and
	// reports how many accepted events were not handled. The bus refuses
	// new Emits before it drains; while Drain runs, Overflow publishes
	// (dead letters, Emits from handlers) are part of the work being
	// drained and are accepted. Once Drain returns, Publish fails with
	// ErrClosed.
	Drain(ctx context.Context) (unhandled int)
	// Close releases what is left (clients), after Drain.
	Close(ctx context.Context) error
}

// Optional capabilities, discovered with a type assertion.
type (
	// GroupNamer names the group of a subscription that gave none, when
	// the default (topic + "." + id) is not unique enough (Kafka: across
	// processes).
	GroupNamer interface {
		PrivateGroup(topic, id string) string
	}
	// ServerAddresser gives server.address and server.port for send spans.
	ServerAddresser interface {
		ServerAddress() (host string, port int)
	}
	// QueueDepther reports the events queued or in hand for a subscription
	// (eventstream.queue.depth).
	QueueDepther interface {
		QueueDepth(s *Sub) int64
	}
	// LagReporter reports consumer lag per topic, group and partition
	// (eventstream.consumer.lag).
	LagReporter interface {
		ReportLag(observe func(topic, group string, partition int32, lag int64))
	}
	// AgeReporter reports, once per topic and consumer group with a member
	// in this process, the age at now of the oldest event accepted and not
	// yet handled: 0 when the group is caught up
	// (eventstream.consumer.time_lag).
	AgeReporter interface {
		ReportAge(now time.Time, observe func(topic, group string, age time.Duration))
	}
	// DeadLetterReader reads a dead-letter topic on its own, outside any
	// subscription (Kafka: a client of its own; progress committed for a
	// group of its own). A transport without it has its dead letters kept
	// by the bus.
	DeadLetterReader interface {
		ReadDeadLetters(ctx context.Context, r DeadLetterRead) error
	}
	// Parker is implemented by a transport that parks pending deliveries
	// (see Pending). To one that does not, Deliver never returns Pending:
	// the bus waits on the worker instead.
	Parker interface {
		ParksPending()
	}
)

// DeadLetterRead is one read of a dead-letter topic, bounded by the end of
// the topic when it starts.
type DeadLetterRead struct {
	Topic string
	// Group's committed offsets are where the read starts ("": the start
	// of the topic).
	Group string
	// Commit records progress for Group: past every record visited, up
	// to the first VisitStop of each partition (a store of dead letters
	// drops those VisitDone).
	Commit bool
	// Last, when positive, reads at most the last Last records of each
	// partition.
	Last int64
	// Visit is called for each record, in order within a partition, from
	// one goroutine. It must call done exactly once, with what became of
	// the record, now or later from any goroutine: the reader keeps a
	// bounded number of visits under way, and commits nothing past one not
	// done.
	Visit func(e *event.Event, done func(Visit))
}

// Visit is what became of one dead letter read.
type Visit int

const (
	// VisitDone: handled (replayed). Progress moves past it; a store drops it.
	VisitDone Visit = iota
	// VisitPassed: left as it is (filtered out, listed). Progress moves
	// past it; a store keeps it.
	VisitPassed
	// VisitStop: not done (its replay failed). Progress stops before it
	// and its partition is read no further (visits of it already under way
	// still finish); a store keeps it.
	VisitStop
)

// Pending is the error Deliver returns, to a Parker, for an event that is
// not done and must not be handled again: its dead letter could not be
// written yet. The transport sets the event aside, with what must stay
// behind it (the records after it on its partition and queue), without
// holding a worker, and calls Retry after Delay, and again after each
// delay Retry returns, from a goroutine of its own. Retry returns 0 and nil
// once the event is done (acknowledge it), or an error once it gives up
// (do not acknowledge it). A transport that gives up first (the member
// leaves, the partition is revoked) calls Retry once more with a done
// context, so that the bus's accounting of the event ends.
type Pending struct {
	Delay time.Duration
	Retry func(ctx context.Context) (again time.Duration, err error)
}

func (*Pending) Error() string { return "eventstream: delivery pending (dead letter not written yet)" }

// ErrRejected is wrapped by the error of a Publish that retrying cannot
// fix: the transport refuses the event itself (too large, invalid).
var ErrRejected = errors.New("event rejected by the transport")

// ErrClosed is returned by Publish once the transport drains or is closed;
// the bus maps it to its own ErrClosed.
var ErrClosed = errClosed{}

type errClosed struct{}

func (errClosed) Error() string { return "transport closed" }

// ErrGoexit is the failure a transport reports when a handler ended its
// goroutine (runtime.Goexit, as testing's FailNow does) instead of
// returning: the event counts as failed.
var ErrGoexit = errGoexit{}

type errGoexit struct{}

func (errGoexit) Error() string {
	return "handler ended its goroutine (runtime.Goexit) instead of returning"
}

// UnhandledError is Unsubscribe's report of accepted events it could
// neither handle within the host's ShutdownTimeout nor hand to another
// member (the subscription was its group's last), or, on Kafka, of events
// set aside (Pending) still not done then: they stay uncommitted, for the
// group's next member.
type UnhandledError struct{ Unhandled int }

func (e *UnhandledError) Error() string {
	return strconv.Itoa(e.Unhandled) + " accepted event(s) not handled before the last member of the group left"
}
