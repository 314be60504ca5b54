package eventstream

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
	"libx.net/eventstream/telemetry"
)

// transport moves events between Emit and the subscriptions. The bus owns
// everything else (validation, chains, retries, dead letters, telemetry),
// so both transports behave alike by construction.
type transport interface {
	// system is the messaging.system value: "memory" or "kafka".
	system() string
	// publish hands an event to every consumer group of its topic.
	publish(ctx context.Context, e *Event) error
	// subscribe starts delivering to s; it returns once s is live.
	subscribe(s *subscription) error
	// unsubscribe stops delivery to s after its in-flight events finish.
	unsubscribe(s *subscription) error
	// drain waits until every accepted event is handled or ctx is done,
	// then stops; it reports how many accepted events were not handled.
	drain(ctx context.Context) (unhandled int)
	// close releases what is left (pools, clients) after drain.
	close() error
}

type transportFactory func(b *bus) (transport, error)

// bus is the EventBus of both modes.
type bus struct {
	cfg    Config
	opts   options
	logger *slog.Logger
	tr     transport
	obs    *observer // nil when telemetry is off

	// emit is the emit chain ending in the transport.
	emit Handler

	// baseCtx is the context handlers run under; cancelled when Close's
	// shutdown timeout runs out, so retries and well-behaved handlers stop.
	baseCtx context.Context
	cancel  context.CancelFunc

	closed    atomic.Bool
	emitting  atomic.Int64 // Emit calls past the closed check
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	subs   map[string]*subscription
	nextID atomic.Uint64
}

func newBus(cfg Config, o options, newTransport transportFactory) (*bus, error) {
	b := &bus{cfg: cfg, opts: o, subs: map[string]*subscription{}}
	logger := o.logger
	if logger == nil {
		logger = slog.Default()
	}
	// The bus's own records carry trace_id and span_id when logged inside
	// a span; wrapping twice is a no-op.
	b.logger = slog.New(telemetry.NewLogHandler(logger.Handler()))
	b.baseCtx, b.cancel = context.WithCancel(context.Background())
	tr, err := newTransport(b)
	if err != nil {
		b.cancel()
		return nil, err
	}
	b.tr = tr
	if !o.telemetryOff {
		if b.obs, err = newObserver(b); err != nil {
			_ = tr.close()
			b.cancel()
			return nil, err
		}
	}
	b.emit = event.Chain(tr.publish, b.emitMiddleware()...)
	return b, nil
}

// emitMiddleware is the emit chain, outermost first.
func (b *bus) emitMiddleware() []Middleware {
	var mws []Middleware
	if b.obs != nil {
		mws = append(mws, b.obs.emitMiddleware(b.tr.system(), b)...)
	}
	return append(mws, b.opts.emitMiddleware...)
}

// Emit implements EventBus.
func (b *bus) Emit(ctx context.Context, topic string, data any) error {
	b.emitting.Add(1)
	defer b.emitting.Add(-1)
	if b.closed.Load() {
		return ErrClosed
	}
	if err := validateTopic(topic); err != nil {
		return err
	}
	if err := checkEncodable(data); err != nil {
		return err
	}
	e := event.New(topic, data)
	var async func(error)
	if m, ok := ctx.Value(emitMetaKey{}).(*emitMeta); ok {
		e.Key = m.key
		if len(m.headers) > 0 {
			e.Headers = maps.Clone(m.headers)
		}
		async = m.async
	}
	err := b.emit(ctx, e)
	if async != nil && err == nil && b.tr.system() != telemetry.SystemKafka {
		async(nil) // ContextWithAsyncEmit: queued is done in memory mode
	}
	return err
}

// On implements EventBus.
func (b *bus) On(topic string, handler EventHandler, opts ...SubscribeOption) (Subscription, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if err := validateTopic(topic); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, ErrNilHandler
	}
	so := subOptions{concurrency: 1}
	for _, opt := range opts {
		if opt == nil {
			return nil, &ConfigError{Field: "SubscribeOption", Reason: "nil option"}
		}
		opt.applySub(&so)
	}
	if so.concurrency < 1 {
		return nil, &ConfigError{Field: "WithConcurrency", Reason: "must be at least 1, got " + strconv.Itoa(so.concurrency)}
	}
	if so.group != "" {
		if err := validateTopic(so.group); err != nil {
			return nil, &ConfigError{Field: "WithConsumerGroup", Reason: err.Error()}
		}
	}
	for i, mw := range so.middleware {
		if mw == nil {
			return nil, &ConfigError{Field: "WithSubscriptionMiddleware", Reason: "middleware " + strconv.Itoa(i) + " is nil"}
		}
	}
	policy := b.cfg.Retry
	if so.retry != nil {
		policy = so.retry
	}
	if err := policy.Validate(); err != nil {
		return nil, &ConfigError{Field: "WithRetryPolicy", Reason: err.Error()}
	}

	id := "sub-" + strconv.FormatUint(b.nextID.Add(1), 10)
	s := &subscription{bus: b, id: id, topic: topic, group: so.group, concurrency: so.concurrency}
	if s.group == "" {
		s.group = b.privateGroup(topic, id)
	}
	s.info = event.SubscriptionInfo{Topic: topic, Group: s.group, Name: id, System: b.tr.system()}
	if err := s.build(handler, *policy, so.middleware); err != nil {
		return nil, err
	}

	b.mu.Lock()
	b.subs[id] = s
	b.mu.Unlock()
	if err := b.tr.subscribe(s); err != nil {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
		s.release()
		return nil, err
	}
	return s, nil
}

// privateGroup names the group of a subscription that gave none. In memory
// mode it is unique to the subscription; on Kafka it must also be unique
// across processes, which the distributed transport adds to.
func (b *bus) privateGroup(topic, id string) string {
	if p, ok := b.tr.(interface{ privateGroup(topic, id string) string }); ok {
		return p.privateGroup(topic, id)
	}
	return topic + "." + id
}

// Off implements EventBus.
func (b *bus) Off(sub Subscription) error {
	s, ok := sub.(*subscription)
	if !ok || s == nil || s.bus != b {
		return ErrUnknownSubscription
	}
	b.mu.Lock()
	_, known := b.subs[s.id]
	delete(b.subs, s.id)
	b.mu.Unlock()
	if !known {
		return ErrUnknownSubscription
	}
	err := b.tr.unsubscribe(s)
	s.release()
	return err
}

// Close implements EventBus.
func (b *bus) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.shutdown() })
	return b.closeErr
}

func (b *bus) shutdown() error {
	start := time.Now()
	b.closed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ShutdownTimeout)
	defer cancel()
	// Emit calls already past the closed check are accepted events: let
	// them land before draining, so none slips in after the drain.
	for b.emitting.Load() > 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	unhandled := b.tr.drain(ctx)
	b.cancel()
	var errs []error
	if unhandled > 0 {
		errs = append(errs, &ShutdownError{Unhandled: unhandled})
	}
	b.mu.Lock()
	subs := b.subs
	b.subs = map[string]*subscription{}
	b.mu.Unlock()
	for _, s := range subs {
		s.release()
	}
	if err := b.tr.close(); err != nil {
		errs = append(errs, err)
	}
	if b.obs != nil {
		if err := b.obs.close(); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		b.logger.Error("eventstream: closed with errors", "error", err, "duration", time.Since(start))
	} else {
		b.logger.Info("eventstream: closed", "duration", time.Since(start))
	}
	return err
}

// subscription is one On call: its consume chain and its place in the
// transport.
type subscription struct {
	bus         *bus
	id          string
	topic       string
	group       string
	concurrency int
	info        event.SubscriptionInfo
	tel         *telemetry.Subscription // nil when telemetry is off

	// handle is the whole consume chain; deliver adds the dead letter.
	handle Handler

	releaseOnce sync.Once
	releases    []func()
}

func (s *subscription) ID() string    { return s.id }
func (s *subscription) Topic() string { return s.topic }
func (s *subscription) Group() string { return s.group }

// build assembles the consume chain:
// metrics(consumed) → retry[ tracing → metrics(process) → recover → logging → user → handler ].
func (s *subscription) build(h Handler, policy RetryPolicy, subMW []Middleware) error {
	b := s.bus
	var outer, inner []Middleware
	if b.obs != nil {
		s.tel = b.obs.tel.Subscription(s.info)
		outer = append(outer, middleware.ConsumeMetrics(s.tel))
		inner = append(inner, middleware.ProcessTracing(s.tel), middleware.ProcessMetrics(s.tel))
	}
	retry, err := middleware.Retry(policy, middleware.OnRetry(s.onRetry))
	if err != nil {
		return &ConfigError{Field: "WithRetryPolicy", Reason: err.Error()}
	}
	inner = append(inner, middleware.Logging(b.logger.With("group", s.group)), middleware.Recover())
	inner = append(inner, b.opts.middleware...)
	inner = append(inner, subMW...)
	s.handle = event.Chain(event.Chain(h, inner...), append(outer, retry)...)
	return nil
}

func (s *subscription) onRetry(ctx context.Context, e *Event, attempt int, err error, delay time.Duration) {
	if s.tel != nil {
		s.tel.RecordRetry(ctx, e, attempt, err)
	}
	s.bus.logger.LogAttrs(ctx, slog.LevelInfo, "eventstream: retrying event",
		slog.String("topic", e.Topic), slog.String("group", s.group), slog.String("event_id", e.ID),
		slog.Int("attempt", attempt), slog.Duration("delay", delay), slog.String("error", err.Error()))
}

// deliver runs the consume chain for one event and dead-letters it when the
// chain gives up. It is what transports call per event.
func (s *subscription) deliver(ctx context.Context, e *Event) {
	if err := s.handle(ctx, e); err != nil {
		s.bus.deadLetter(ctx, s, e, err)
	}
}

func (s *subscription) addRelease(f func()) { s.releases = append(s.releases, f) }

func (s *subscription) release() {
	s.releaseOnce.Do(func() {
		for _, f := range s.releases {
			f()
		}
	})
}

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
)

// deadLetter sends an event whose retries ran out to its dead-letter topic,
// in the event's original trace, so that a subscriber there can inspect or
// replay it.
func (b *bus) deadLetter(ctx context.Context, s *subscription, e *Event, cause error) {
	attempts := 1
	var re *middleware.RetryError
	if errors.As(cause, &re) {
		attempts, cause = re.Attempts, re.Err
	}
	attrs := []slog.Attr{
		slog.String("topic", e.Topic), slog.String("group", s.group), slog.String("event_id", e.ID),
		slog.Int("attempts", attempts), slog.String("error", cause.Error()),
	}
	if s.tel != nil {
		s.tel.RecordDeadLetter(ctx, e, cause)
	}
	if b.opts.deadLetterTopic == nil {
		b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: event dropped after its last attempt (dead letters are off)", attrs...)
		return
	}
	dlqTopic := b.opts.deadLetterTopic(e.Topic)
	if e.Headers[HeaderDeadLetterTopic] != "" || validateTopic(dlqTopic) != nil {
		// A dead letter that fails again is not dead-lettered twice: that
		// would loop. It stays logged, with its trace.
		b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: dead-letter event failed; not dead-lettered again", attrs...)
		return
	}
	dl := event.New(dlqTopic, e.Data)
	dl.Key, dl.Raw = e.Key, e.Raw
	dl.Headers = make(map[string]string, len(e.Headers)+9)
	for k, v := range e.Headers {
		dl.Headers[k] = v
	}
	dl.Headers[HeaderDeadLetterReason] = cause.Error()
	dl.Headers[HeaderDeadLetterErrorType] = telemetry.ErrorType(cause)
	dl.Headers[HeaderDeadLetterAttempts] = strconv.Itoa(attempts)
	dl.Headers[HeaderDeadLetterTopic] = e.Topic
	dl.Headers[HeaderDeadLetterID] = e.ID
	dl.Headers[HeaderDeadLetterGroup] = s.group
	dl.Headers[HeaderDeadLetterTime] = time.Now().UTC().Format(time.RFC3339Nano)
	if e.Record != nil {
		dl.Headers[HeaderDeadLetterPartition] = strconv.Itoa(int(e.Record.Partition))
		dl.Headers[HeaderDeadLetterOffset] = strconv.FormatInt(e.Record.Offset, 10)
	}
	// The send span's parent is the event's creation context, so every
	// attempt and the dead letter share one trace.
	sendCtx := ctx
	if b.obs != nil {
		sendCtx = b.obs.tel.Propagator().Extract(ctx, propagation.MapCarrier(e.Headers))
	}
	if err := b.emit(sendCtx, dl); err != nil {
		b.logger.LogAttrs(ctx, slog.LevelError, "eventstream: dead-letter send failed; event lost",
			append(attrs, slog.String("dead_letter_topic", dlqTopic), slog.String("send_error", err.Error()))...)
		return
	}
	b.logger.LogAttrs(ctx, slog.LevelWarn, "eventstream: event dead-lettered",
		append(attrs, slog.String("dead_letter_topic", dlqTopic))...)
}

// waitDrained polls pending every interval until it reports nothing left or
// ctx is done, and returns what was left. Transports drain with it; Close is
// rare enough that polling beats a notification on every event.
func waitDrained(ctx context.Context, every time.Duration, pending func() int) int {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n := pending()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return pending()
		case <-tick.C:
		}
	}
}
