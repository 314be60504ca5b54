// Package eventstream is an event bus whose every event is observable: an
// OpenTelemetry trace from Emit to each handler, metrics, and slog lines that
// carry trace ids.
//
// The API is four methods — Emit, On, Off, Close — over two interchangeable
// transports: an in-process bus on an ants goroutine pool (memory mode) and
// Kafka through franz-go (distributed mode). Both run every event through the
// same middleware chains:
//
//	emit:    telemetry (send span, metrics, history) → logging → WithEmitMiddleware… → transport
//	consume: telemetry (consumed, in flight) → one attempt [ telemetry (process span,
//	         metrics, history) → logging → recover → WithMiddleware… → WithSubscriptionMiddleware…
//	         → handler ] → failed: the next attempt after its backoff, its lane waiting
//	         without a worker; the last one failed: the dead-letter topic
//
// A handler has three answers: nil (done), an error (a failed attempt,
// retried per its policy, then dead-lettered) and Requeue (not done: handed
// back to its group, not a failure). A handler whose context ends because
// its subscription leaves (Off past its shutdown timeout, a Kafka revoke)
// says "not done" by returning the context's error.
//
// Semantics, identical in both modes: every consumer group receives every
// event once and one member of the group handles it; a subscription without
// a group is a group of its own. With concurrency 1 a subscription sees a
// topic's events in emit order; with concurrency n, events with the same key
// (see WithKey) still run one at a time, in order. A full queue makes
// Emit wait until its context is done; nothing is dropped silently. Close
// refuses new events, drains what was accepted, and returns.
package eventstream

import (
	"context"
	"strconv"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/history"
	"libx.net/eventstream/middleware"
)

// Event is one message on the bus; see event.Event.
type Event = event.Event

// EventHandler handles one event; a non-nil error means it was not handled
// and is retried per the subscription's RetryPolicy.
type EventHandler = event.Handler

// Handler is the handler type middleware wraps (the same as EventHandler).
type Handler = event.Handler

// Middleware wraps a handler: func(next Handler) Handler.
type Middleware = event.Middleware

// RetryPolicy says how often and how patiently a failed handler is retried.
type RetryPolicy = middleware.RetryPolicy

// Stats are the bus's counters and latencies: the same measurements its
// OpenTelemetry metrics report, kept by the bus itself (no SDK needed).
type Stats = history.Stats

// HistoryEntry is one recent send or process operation, written where its
// span starts and ends (with the span's ids when an SDK records it).
type HistoryEntry = history.Entry

// EventBus is the bus: publish with Emit, subscribe with On, unsubscribe
// with Off, and Close when done.
type EventBus interface {
	// Emit publishes data to topic. In memory mode it returns once every
	// consumer group's queue accepted the event (waiting while a queue is
	// full, until ctx is done); in distributed mode once the broker
	// acknowledged it. A ctx that is already done fails at once with its
	// error, in both modes. Options set the key (WithKey), headers
	// (WithHeaders) or make it asynchronous (WithAsync).
	Emit(ctx context.Context, topic string, data any, opts ...EmitOption) error
	// On subscribes handler to topic. The subscription is live when On
	// returns: every event emitted afterwards reaches its group.
	On(topic string, handler EventHandler, opts ...SubscribeOption) (Subscription, error)
	// Off stops new deliveries to the subscription at once, lets it finish
	// the events already accepted for it (within Config.ShutdownTimeout;
	// what is left then goes to the other members of its group; a group's
	// last member returns a *ShutdownError counting what it discarded), and
	// returns once its in-flight handlers have finished; those still
	// running when ShutdownTimeout runs out see their context cancelled,
	// and one that returns its context's error hands its event back to the
	// group (see Requeue). Called from a
	// handler, it does not wait for the caller nor for the queue: the
	// subscription finishes its queue afterwards, and Close drains it.
	Off(subscription Subscription) error
	// Close refuses new events (ErrClosed), drains those already accepted
	// within Config.ShutdownTimeout, releases everything and returns. It is
	// idempotent.
	Close() error
}

// MemoryEventBus is the memory-mode bus's view of its own telemetry. The
// distributed bus implements it too.
type MemoryEventBus interface {
	EventBus
	// GetStats returns counters and latency percentiles, the figures the
	// bus's metrics report (zero values when stats are off). It keeps
	// working after Close.
	GetStats() Stats
	// GetHistory returns up to n of the most recent send and process
	// operations, newest first (none when history is off). It keeps
	// working after Close.
	GetHistory(n int) []HistoryEntry
}

// Subscription identifies a subscription made by On.
type Subscription interface {
	// ID is unique within the bus.
	ID() string
	// Topic subscribed to.
	Topic() string
	// Group is the consumer group (a generated one when none was given).
	Group() string
}

// Modes.
const (
	ModeMemory      = "memory"
	ModeDistributed = "distributed"
)

// Config configures a bus. Zero fields take the defaults documented on them
// (New(nil), New(&Config{}) and New(DefaultConfig()) build the same bus);
// DefaultConfig returns them filled in.
type Config struct {
	// Mode is ModeMemory ("memory", the default when empty) or
	// ModeDistributed ("distributed").
	Mode string
	// Pool sizes the ants goroutine pool that runs handlers.
	Pool PoolConfig
	// Memory configures memory mode, and history and stats in both modes;
	// nil means the defaults.
	Memory *MemoryConfig
	// ShutdownTimeout bounds how long Close waits for accepted events.
	// Default 30s.
	ShutdownTimeout time.Duration
	// MQ, in distributed mode, is the message queue to run over instead
	// of the built-in franz-go one (which Kafka configures). Default nil.
	MQ MQAdapter
	// Retry is the retry policy of subscriptions that do not set their own
	// (WithRetryPolicy). Nil means DefaultRetryPolicy().
	Retry *RetryPolicy
	// Kafka configures distributed mode (required there unless MQ is set; ignored in memory
	// mode); see DefaultDistributedConfig.
	Kafka *KafkaConfig
}

// PoolConfig sizes the ants pool.
type PoolConfig struct {
	// Size is the most handler goroutines running at once. Default 1000.
	Size int
	// ExpiryDuration is how long an idle worker lives. Default 10s.
	ExpiryDuration time.Duration
	// PreAlloc allocates the pool's worker slots up front.
	PreAlloc bool
}

// MemoryConfig configures the lanes (memory mode's queues, and the queues
// between Kafka fetches and handlers) and the bus's history and stats, in
// both modes. Zero fields take the defaults: a nil Memory, or one whose
// EnableHistory and EnableMetrics are both false, keeps history and stats
// on. Setting either Enable flag to true makes both flags literal
// (EnableHistory true with EnableMetrics false turns stats off). DisableHistory and DisableMetrics turn one off whatever the
// Enable flags say.
type MemoryConfig struct {
	// BufferSize bounds, per lane, the events queued or in hand (a
	// subscription with concurrency n has n lanes), in both modes: memory
	// mode's Emit waits for room; Kafka mode pauses fetching. Default 1000.
	BufferSize int
	// EnableHistory keeps the most recent operations for GetHistory.
	EnableHistory bool
	// MaxHistorySize bounds the history. Default 10000.
	MaxHistorySize int
	// EnableMetrics keeps the counters and latencies GetStats reads. (Where
	// OpenTelemetry metrics go is the MeterProvider's business; see
	// WithMeterProvider and WithoutTelemetry.)
	EnableMetrics bool
	// DisableHistory turns history off. Default false.
	DisableHistory bool
	// DisableMetrics turns GetStats's counters off. Default false.
	DisableMetrics bool
	// DeadLetterStoreSize bounds the dead letters kept for Replay,
	// ListDeadLetters and the debug page where the transport cannot read
	// dead-letter topics back (memory mode, an MQ adapter); once full, the
	// oldest makes room. Kafka mode reads its dead-letter topics instead.
	// Default 1000.
	DeadLetterStoreSize int
	// DisableDeadLetterStore keeps no dead letters (Replay then returns
	// ErrReplayUnsupported in memory mode). Default false.
	DisableDeadLetterStore bool
	// RetainEvents, in memory mode, keeps the last RetainEvents events of
	// each topic, so that a consumer group that subscribes later starts
	// with them (oldest first), as a new Kafka group does with
	// InitialOffsetEarliest; a named group whose last member left resumes
	// with what it missed that is still kept. Default 0: nothing is kept
	// and a new group starts with the next event. Ignored in distributed
	// mode, where the broker keeps the log. See the README's Retention.
	RetainEvents int
	// RetainFor, with RetainEvents, also drops kept events older than
	// this. Default 0: kept until RetainEvents newer ones push them out.
	// It may not be set without RetainEvents, the bound on memory.
	RetainFor time.Duration
}

// Defaults, in one place.
const (
	defaultPoolSize        = 1000
	defaultPoolExpiry      = 10 * time.Second
	defaultBufferSize      = 1000
	defaultMaxHistorySize  = 10000
	defaultDeadLetterStore = 1000
	defaultShutdownTimeout = 30 * time.Second

	// Upper bounds, so that a huge value is a clear error rather than an
	// allocation that cannot succeed.
	maxPoolSize        = 1 << 20
	maxBufferSize      = 1 << 24
	maxHistorySize     = 1 << 24
	maxDeadLetterStore = 1 << 20
)

// DefaultConfig returns a memory-mode configuration with history and stats on.
func DefaultConfig() *Config {
	return &Config{
		Mode: ModeMemory,
		Pool: PoolConfig{Size: defaultPoolSize, ExpiryDuration: defaultPoolExpiry},
		Memory: &MemoryConfig{
			BufferSize:          defaultBufferSize,
			EnableHistory:       true,
			MaxHistorySize:      defaultMaxHistorySize,
			EnableMetrics:       true,
			DeadLetterStoreSize: defaultDeadLetterStore,
		},
		ShutdownTimeout: defaultShutdownTimeout,
	}
}

// DefaultRetryPolicy is used by subscriptions that set none: three retries
// after the first attempt, exponential backoff from 100ms to 5s, 20% jitter.
func DefaultRetryPolicy() *RetryPolicy {
	return &RetryPolicy{
		MaxRetries:      3,
		BackoffStrategy: middleware.BackoffExponential,
		InitialDelay:    100 * time.Millisecond,
		MaxDelay:        5 * time.Second,
		Multiplier:      2,
		Jitter:          0.2,
	}
}

// New builds a bus from config (nil means DefaultConfig()) and options.
func New(config *Config, opts ...Option) (EventBus, error) {
	if config == nil {
		config = DefaultConfig()
	}
	cfg, err := config.normalize()
	if err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			return nil, &ConfigError{Field: "Option", Reason: "nil option"}
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	switch cfg.Mode {
	case ModeMemory:
		b, err := newBus(cfg, o, memoryTransport(cfg.Memory))
		if err != nil {
			return nil, err
		}
		return b, nil
	default: // normalize accepted only the two modes
		return newDistributed(cfg, o)
	}
}

// normalize validates c and returns a copy with defaults filled in; the
// caller's Config is never modified.
func (c *Config) normalize() (Config, error) {
	n := *c
	if n.Mode == "" {
		n.Mode = ModeMemory
	}
	if n.Mode != ModeMemory && n.Mode != ModeDistributed {
		return n, &ConfigError{Field: "Mode", Reason: "unknown mode " + quote(n.Mode) + `, want "memory" or "distributed"`}
	}
	switch {
	case n.Pool.Size < 0:
		return n, &ConfigError{Field: "Pool.Size", Reason: "must not be negative"}
	case n.Pool.Size > maxPoolSize:
		return n, &ConfigError{Field: "Pool.Size", Reason: "must be at most " + strconv.Itoa(maxPoolSize)}
	case n.Pool.Size == 0:
		n.Pool.Size = defaultPoolSize
	}
	switch {
	case n.Pool.ExpiryDuration < 0:
		return n, &ConfigError{Field: "Pool.ExpiryDuration", Reason: "must not be negative"}
	case n.Pool.ExpiryDuration == 0:
		n.Pool.ExpiryDuration = defaultPoolExpiry
	}
	mem := MemoryConfig{BufferSize: defaultBufferSize, MaxHistorySize: defaultMaxHistorySize, DeadLetterStoreSize: defaultDeadLetterStore}
	if c.Memory != nil {
		mem = *c.Memory
		if !mem.EnableHistory && !mem.EnableMetrics {
			mem.EnableHistory, mem.EnableMetrics = true, true // both zero: the defaults
		}
		switch {
		case mem.BufferSize < 0:
			return n, &ConfigError{Field: "Memory.BufferSize", Reason: "must not be negative"}
		case mem.BufferSize == 0:
			mem.BufferSize = defaultBufferSize
		case mem.BufferSize > maxBufferSize:
			return n, &ConfigError{Field: "Memory.BufferSize", Reason: "must be at most " + strconv.Itoa(maxBufferSize)}
		}
		switch {
		case mem.RetainEvents < 0:
			return n, &ConfigError{Field: "Memory.RetainEvents", Reason: "must not be negative"}
		case mem.RetainEvents > maxBufferSize:
			return n, &ConfigError{Field: "Memory.RetainEvents", Reason: "must be at most " + strconv.Itoa(maxBufferSize)}
		case mem.RetainFor < 0:
			return n, &ConfigError{Field: "Memory.RetainFor", Reason: "must not be negative"}
		case mem.RetainFor > 0 && mem.RetainEvents == 0:
			return n, &ConfigError{Field: "Memory.RetainFor", Reason: "needs Memory.RetainEvents, the bound on what is kept"}
		}
		switch {
		case mem.MaxHistorySize < 0:
			return n, &ConfigError{Field: "Memory.MaxHistorySize", Reason: "must not be negative"}
		case mem.MaxHistorySize == 0:
			mem.MaxHistorySize = defaultMaxHistorySize
		case mem.MaxHistorySize > maxHistorySize:
			return n, &ConfigError{Field: "Memory.MaxHistorySize", Reason: "must be at most " + strconv.Itoa(maxHistorySize)}
		}
	}
	if c.Memory == nil {
		mem.EnableHistory, mem.EnableMetrics = true, true
	}
	switch {
	case mem.DeadLetterStoreSize < 0:
		return n, &ConfigError{Field: "Memory.DeadLetterStoreSize", Reason: "must not be negative"}
	case mem.DeadLetterStoreSize > maxDeadLetterStore:
		return n, &ConfigError{Field: "Memory.DeadLetterStoreSize", Reason: "must be at most " + strconv.Itoa(maxDeadLetterStore)}
	case mem.DisableDeadLetterStore:
		mem.DeadLetterStoreSize = 0
	case mem.DeadLetterStoreSize == 0:
		mem.DeadLetterStoreSize = defaultDeadLetterStore
	}
	mem.EnableHistory = mem.EnableHistory && !mem.DisableHistory
	mem.EnableMetrics = mem.EnableMetrics && !mem.DisableMetrics
	n.Memory = &mem
	switch {
	case n.ShutdownTimeout < 0:
		return n, &ConfigError{Field: "ShutdownTimeout", Reason: "must not be negative"}
	case n.ShutdownTimeout == 0:
		n.ShutdownTimeout = defaultShutdownTimeout
	}
	if n.Retry == nil {
		n.Retry = DefaultRetryPolicy()
	}
	if err := n.Retry.Validate(); err != nil {
		return n, configError("Retry", err)
	}
	return n, nil
}

func quote(s string) string { return `"` + s + `"` }

// Permanent marks err as not worth retrying: the event goes straight to the
// dead-letter topic. Return it from a handler for input that can never
// succeed, such as a malformed payload.
func Permanent(err error) error { return middleware.Permanent(err) }

// Attempt returns which attempt of its event a handler's ctx belongs to:
// 1 for the first try, 2 for the first retry, and so on.
func Attempt(ctx context.Context) int { return event.Attempt(ctx) }
