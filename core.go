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
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/memory"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/middleware"
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
	err := b.tr.Publish(ctx, e, po)
	if err == nil {
		return nil
	}
	var full *memory.FullError
	switch {
	case errors.Is(err, transport.ErrClosed):
		return ErrClosed
	case errors.As(err, &full):
		return &QueueFullError{Topic: full.Topic, Group: full.Group, Err: full.Err}
	}
	return err
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
	if err := b.validateEmitTopic(topic); err != nil {
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
	if len(eo.headers) > 0 {
		e.Headers = maps.Clone(eo.headers)
	}
	if eo.async != nil {
		ctx = context.WithValue(ctx, publishKey{}, &publishRequest{b, transport.PublishOptions{Done: eo.async}})
	}
	return b.emit(ctx, e)
}

// validateEmitTopic refuses a topic whose dead letters could never be
// written (its "<topic>.dlq" would be too long), as On does.
func (b *bus) validateEmitTopic(topic string) error {
	if err := validateTopic(topic); err != nil {
		return err
	}
	if len(topic) > maxTopicLen-len(".dlq") && b.opts.deadLetterTopic != nil {
		return b.validateDeadLetterTopic(topic)
	}
	return nil
}

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
	if err := s.build(handler, *policy, so.middleware); err != nil {
		return nil, err
	}
	s.ts = &transport.Sub{ID: id, Topic: topic, Group: s.group, Private: s.private,
		Concurrency: so.concurrency, Deliver: s.deliver}

	if err := b.tr.Subscribe(s.ts); err != nil {
		s.release()
		if errors.Is(err, transport.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, err
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
	err := b.tr.Unsubscribe(s.ts)
	s.release()
	if s.private && s.tel != nil {
		s.tel.Forget() // a private group's series end with it
	}
	return err
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
		errs = append(errs, err)
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
		if err := b.obs.close(); err != nil {
			errs = append(errs, err)
		}
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

// subscription is one On call: its consume chain and its place in the
// transport.
type subscription struct {
	bus         *bus
	id          string
	topic       string
	group       string
	private     bool
	concurrency int
	tel         *itel.Subscription // nil when telemetry is off
	ts          *transport.Sub

	// handle is the whole consume chain; deliver adds the dead letter.
	handle Handler

	releaseMu sync.Mutex
	released  bool
	releases  []func()
}

func (s *subscription) ID() string    { return s.id }
func (s *subscription) Topic() string { return s.topic }
func (s *subscription) Group() string { return s.group }

// build assembles the consume chain: telemetry(delivery) → retry[
// telemetry(attempt: span, metrics, history) → logging → recover → user → handler ].
func (s *subscription) build(h Handler, policy RetryPolicy, subMW []Middleware) error {
	b := s.bus
	var outer, inner []Middleware
	if b.obs != nil {
		s.tel = b.obs.tel.Subscription(s.topic, s.group, s.id, s.private)
		outer = append(outer, s.tel.Consume)
		inner = append(inner, s.tel.Process)
	}
	retry, err := middleware.Retry(policy, middleware.OnRetry(s.onRetry))
	if err != nil {
		return configError("WithRetryPolicy", err)
	}
	inner = append(inner, middleware.Logging(b.logger.With("group", s.group)), middleware.Recover())
	inner = append(inner, b.opts.middleware...)
	inner = append(inner, subMW...)
	s.handle = event.Chain(event.Chain(h, inner...), append(outer, retry)...)
	return nil
}

func (s *subscription) onRetry(ctx context.Context, e *Event, attempt int, err error, delay time.Duration) {
	if s.tel != nil {
		s.tel.RecordRetry()
	}
	s.bus.logger.LogAttrs(ctx, slog.LevelInfo, "eventstream: retrying event",
		slog.String("topic", e.Topic), slog.String("group", s.group), slog.String("event_id", e.ID),
		slog.Int("attempt", attempt), slog.Duration("delay", delay), slog.String("error", err.Error()))
}

// errShutdown: an event cut off by Close; Close counted it as unhandled.
var errShutdown = errors.New("eventstream: event cut off by shutdown")

// deliver is transport.Sub.Deliver: it runs the consume chain for one
// event and decides its dead letter, in one place for every transport.
func (s *subscription) deliver(ctx context.Context, e *Event, failure error) error {
	b := s.bus
	if failure != nil {
		var de *DecodeError
		switch {
		case errors.Is(failure, transport.ErrGoexit):
			return b.deadLetter(ctx, s, e, &middleware.RetryError{Attempts: 1, Err: &GoexitError{}})
		case errors.As(failure, &de):
			// A dead letter is always delivered: its subscriber is there
			// to see what failed, JSON or not.
			if b.cfg.Kafka != nil && b.cfg.Kafka.NonJSON == NonJSONDeadLetter && !b.isDeadLetter(e) {
				return b.deadLetter(ctx, s, e, failure)
			}
		}
	}
	err := s.handle(ctx, e)
	if err == nil {
		return nil
	}
	if b.baseCtx.Err() != nil {
		return errShutdown
	}
	return b.deadLetter(ctx, s, e, err)
}

func (s *subscription) addRelease(f func()) {
	s.releaseMu.Lock()
	defer s.releaseMu.Unlock()
	if s.released {
		f()
		return
	}
	s.releases = append(s.releases, f)
}

func (s *subscription) release() {
	s.releaseMu.Lock()
	fs := s.releases
	s.releases, s.released = nil, true
	s.releaseMu.Unlock()
	for _, f := range fs {
		f()
	}
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
	dl.Headers = make(map[string]string, len(e.Headers)+9)
	maps.Copy(dl.Headers, e.Headers)
	dl.Headers[HeaderDeadLetterReason] = cause.Error()
	dl.Headers[HeaderDeadLetterErrorType] = itel.ErrorType(cause)
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
	// attempt and the dead letter share one trace. The dead letter never
	// waits for room: the event was accepted already, and this worker may
	// be the one a full queue waits for.
	sendCtx := context.WithValue(ctx, publishKey{}, &publishRequest{b, transport.PublishOptions{Overflow: true}})
	if b.obs != nil {
		sendCtx = b.obs.tel.WithCreation(sendCtx, e)
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
