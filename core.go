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

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/telemetry"
)

// transportFactory builds a transport from what the bus lends it.
type transportFactory func(h transport.Host) (transport.Transport, error)

// bus is the EventBus of both modes. It owns everything that must mean the
// same in every mode — validation, chains, retries, dead letters, telemetry
// — and leaves moving events to its transport.
type bus struct {
	cfg    Config
	opts   options
	logger *slog.Logger
	tr     transport.Transport
	sched  *lanes.Scheduler
	obs    *observer // nil when telemetry is off
	system string
	// deadLetterUndecodable: events the transport cannot decode are
	// dead-lettered, not handled (set by the mode: Kafka's NonJSON).
	deadLetterUndecodable bool
	// dlStore keeps recent dead letters for Replay where the transport
	// cannot read them back (deadletterstore.go); nil otherwise.
	dlStore *deadLetterStore

	// emit is the emit chain ending in the transport.
	emit Handler

	// baseCtx is the context handlers run under; cancelled when Close's
	// shutdown timeout runs out, so retries and well-behaved handlers stop.
	// It carries handlerKey, so an Emit from a handler is recognised.
	baseCtx context.Context
	cancel  context.CancelFunc

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex // guards subs and, with closed, the On/Close race
	subs   map[string]*subscription
	nextID atomic.Uint64
}

// handlerKey marks the contexts handlers run under.
type handlerKey struct{}

func newBus(cfg Config, o options, newTransport transportFactory) (*bus, error) {
	b := &bus{cfg: cfg, opts: o, subs: map[string]*subscription{}}
	logger := o.logger
	if logger == nil {
		logger = slog.Default()
	}
	// The bus's own records carry trace_id and span_id when logged inside
	// a span; wrapping twice is a no-op.
	b.logger = slog.New(telemetry.NewLogHandler(logger.Handler()))
	base, cancel := context.WithCancel(context.Background())
	b.baseCtx, b.cancel = context.WithValue(base, handlerKey{}, true), cancel
	sched, err := lanes.NewScheduler(cfg.Pool.Size, cfg.Pool.ExpiryDuration, cfg.Pool.PreAlloc)
	if err != nil {
		cancel()
		return nil, configError("Pool", err)
	}
	b.sched = sched
	host := transport.Host{
		Logger:          b.logger,
		BaseCtx:         b.baseCtx,
		ShutdownTimeout: cfg.ShutdownTimeout,
		QueueSize:       cfg.Memory.BufferSize,
		Sched:           sched,
	}
	if !o.telemetryOff {
		host.MeterProvider = o.meterProviderOrGlobal()
	}
	tr, err := newTransport(host)
	if err != nil {
		_ = sched.Close(0)
		cancel()
		return nil, err
	}
	b.tr, b.system = tr, tr.System()
	if _, reads := tr.(transport.DeadLetterReader); !reads && cfg.Memory.DeadLetterStoreSize > 0 && o.deadLetterTopic != nil {
		b.dlStore = newDeadLetterStore(cfg.Memory.DeadLetterStoreSize, b.logger)
	}
	if !o.telemetryOff {
		if b.obs, err = newObserver(b); err != nil {
			_ = tr.Close(context.Background())
			_ = sched.Close(0)
			cancel()
			return nil, err
		}
	}
	b.emit = event.Chain(b.publish, b.emitMiddleware()...)
	return b, nil
}

// emitMiddleware is the emit chain, outermost first.
func (b *bus) emitMiddleware() []Middleware {
	var mws []Middleware
	if b.obs != nil {
		mws = append(mws, b.obs.emitMiddleware(b)...)
	}
	return append(mws, b.opts.emitMiddleware...)
}

// publishKey carries a publishRequest from Emit and the dead letter through
// the emit chain to the transport; the common Emit carries none.
type publishKey struct{}

// publishRequest is meant for one bus: a handler's ctx that reaches another
// bus's Emit (an MQ adapter over a bus) must not carry it there.
type publishRequest struct {
	bus *bus
	transport.PublishOptions
}

// publish ends the emit chain: it hands the event to the transport and
// turns the transport's errors into the bus's.
func (b *bus) publish(ctx context.Context, e *Event) error {
	var po transport.PublishOptions
	if p, ok := ctx.Value(publishKey{}).(*publishRequest); ok && p.bus == b {
		po = p.PublishOptions
	}
	// An Emit from a handler may run on the only worker a full queue waits
	// for: it never waits for room (see the README's backpressure rule).
	if !po.Overflow && ctx.Value(handlerKey{}) != nil {
		po.Overflow = true
	}
	return fromTransport(b.tr.Publish(ctx, e, po))
}

// Emit implements EventBus.
func (b *bus) Emit(ctx context.Context, topic string, data any, opts ...EmitOption) error {
	if ctx == nil {
		return ErrNilContext
	}
	if err := ctx.Err(); err != nil {
		return err // a done context fails alone, before anything happens
	}
	if b.closed.Load() {
		return ErrClosed
	}
	if err := validateTopic(topic); err != nil {
		return err
	}
	var eo emitOptions
	if len(opts) > 0 {
		// Options are applied to a copy of their own, so that the common
		// Emit without options does not move eo to the heap.
		p := new(emitOptions)
		for _, o := range opts {
			if o == nil {
				return &ConfigError{Field: "EmitOption", Reason: "nil option"}
			}
			o.applyEmit(p)
		}
		eo = *p
	}
	if err := checkEncodable(data); err != nil {
		return err
	}
	e := event.New(topic, data)
	e.Key = eo.key
	setLineage(ctx, e, eo.correlationID)
	eventmeta.Bind(e, b.baseCtx) // its handlers' context, built with it
	if len(eo.headers) > 0 {
		e.Headers = maps.Clone(eo.headers)
	}
	if eo.async != nil {
		ctx = context.WithValue(ctx, publishKey{}, &publishRequest{b, transport.PublishOptions{Done: asyncDone(eo.async)}})
	}
	return b.emit(ctx, e)
}

// asyncDone reports to done the outcome of an asynchronous Emit in the bus's
// errors.
func asyncDone(done func(error)) func(error) {
	return func(err error) { done(fromTransport(err)) }
}

// validateDeadLetterTopic refuses, at On, a topic whose dead letters could
// never be written (its "<topic>.dlq" would be too long). Emit does not ask:
// such a topic may exist on the cluster, and whoever reads it elsewhere may
// dead-letter it to a name of its own.
func (b *bus) validateDeadLetterTopic(topic string) error {
	if b.opts.deadLetterTopic == nil {
		return nil
	}
	dlq := b.opts.deadLetterTopic(topic)
	if err := validateTopic(dlq); err != nil {
		return &TopicError{Topic: topic, Reason: "its dead-letter topic " + strconv.Quote(dlq) +
			" is not a valid topic (use a shorter topic, WithDeadLetterTopic or WithoutDeadLetter)"}
	}
	return nil
}

// On implements EventBus.
func (b *bus) On(topic string, handler EventHandler, opts ...SubscribeOption) (Subscription, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if err := validateTopic(topic); err != nil {
		return nil, err
	}
	if err := b.validateDeadLetterTopic(topic); err != nil {
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
	if so.concurrency < 1 || so.concurrency > maxConcurrency {
		return nil, &ConfigError{Field: "WithConcurrency", Reason: "must be in [1, " + strconv.Itoa(maxConcurrency) + "], got " + strconv.Itoa(so.concurrency)}
	}
	if so.group != "" {
		if err := validateTopic(so.group); err != nil {
			var te *TopicError
			errors.As(err, &te)
			return nil, &ConfigError{Field: "WithConsumerGroup", Reason: "group " + strconv.Quote(so.group) + ": " + te.Reason}
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
		return nil, configError("WithRetryPolicy", err)
	}

	id := "sub-" + strconv.FormatUint(b.nextID.Add(1), 10)
	s := &subscription{bus: b, id: id, topic: topic, group: so.group, concurrency: so.concurrency}
	if s.group == "" {
		s.private = true
		s.group = topic + "." + id
		if gn, ok := b.tr.(transport.GroupNamer); ok {
			s.group = gn.PrivateGroup(topic, id)
		}
	}
	if so.breaker != nil {
		c, err := so.breaker.normalize()
		if err != nil {
			return nil, err
		}
		s.breaker = newBreaker(s, c)
	}
	if so.rateLimit != nil {
		l, err := so.rateLimit.limiter()
		if err != nil {
			return nil, err
		}
		s.limiter = l
	}
	s.maxRequeues = DefaultMaxRequeues
	if so.maxRequeues != nil {
		if *so.maxRequeues < 0 {
			return nil, &ConfigError{Field: "WithMaxRequeues", Reason: "must be >= 0, got " + strconv.Itoa(*so.maxRequeues)}
		}
		s.maxRequeues = *so.maxRequeues
	}
	if err := s.build(handler, *policy, so.middleware); err != nil {
		return nil, err
	}
	s.ts = &transport.Sub{ID: id, Topic: topic, Group: s.group, Private: s.private,
		Concurrency: so.concurrency, DeadLetterUndecodable: b.deadLetterUndecodable,
		Deliver: s.deliver, Left: s.ended}

	if err := b.tr.Subscribe(s.ts); err != nil {
		s.release()
		return nil, fromTransport(err)
	}
	b.mu.Lock()
	if b.closed.Load() {
		// Close began while the transport subscribed: undo.
		b.mu.Unlock()
		_ = b.tr.Unsubscribe(s.ts)
		s.release()
		return nil, ErrClosed
	}
	b.subs[id] = s
	if b.obs != nil {
		b.obs.observeSubscription(b, s)
	}
	b.mu.Unlock()
	return s, nil
}

// maxConcurrency bounds WithConcurrency: each unit is a lane.
const maxConcurrency = 1 << 16

// Off implements EventBus.
func (b *bus) Off(sub Subscription) error {
	s, ok := sub.(*subscription)
	if !ok || s == nil || s.bus != b {
		return ErrUnknownSubscription
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrClosed
	}
	_, known := b.subs[s.id]
	delete(b.subs, s.id)
	b.mu.Unlock()
	if !known {
		return ErrUnknownSubscription
	}
	// The transport calls s.ended once the last handler returned, which is
	// after Off returns when Off is called from one of s's own handlers.
	return fromTransport(b.tr.Unsubscribe(s.ts))
}

// Close implements EventBus.
func (b *bus) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.shutdown() })
	return b.closeErr
}

func (b *bus) shutdown() error {
	start := time.Now()
	b.mu.Lock()
	b.closed.Store(true)
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ShutdownTimeout)
	defer cancel()
	unhandled := b.tr.Drain(ctx)
	// What was cut off is counted; from here on it is neither retried nor
	// dead-lettered (deliver checks baseCtx).
	b.cancel()
	var errs []error
	if unhandled > 0 {
		errs = append(errs, &ShutdownError{Unhandled: unhandled})
	}
	if err := b.tr.Close(ctx); err != nil {
		errs = append(errs, fromTransport(err))
	}
	b.mu.Lock()
	subs := b.subs
	b.subs = map[string]*subscription{}
	b.mu.Unlock()
	for _, s := range subs {
		s.release()
	}
	// Workers still running a handler that ignores its context are left
	// behind rather than holding Close past its timeout.
	wait := time.Until(deadlineOf(ctx))
	if unhandled > 0 {
		wait = 0
	}
	if err := b.sched.Close(wait); err != nil && unhandled == 0 {
		errs = append(errs, &ShutdownError{Unhandled: 0, Err: err})
	}
	if b.obs != nil {
		b.obs.close()
	}
	err := errors.Join(errs...)
	if err != nil {
		b.logger.Error("eventstream: closed with errors", "error", err, "duration", time.Since(start))
	} else {
		b.logger.Debug("eventstream: closed", "duration", time.Since(start))
	}
	return err
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
