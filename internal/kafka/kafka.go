// Package kafka is the bus's Kafka transport, over franz-go: one producer
// client for publishing and the admin calls, and one consumer client per
// subscription, each a member of the subscription's consumer group. Records
// are CloudEvents in binary mode or the compact format (record.go; either is
// read, whichever is written); handlers run on the host's
// scheduler, in lanes that keep a key's records in order (consumer.go), and
// an offset is committed only once its event is done.
package kafka

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/plugin/kotel"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
	"libx.net/eventstream/telemetry"
)

// Config is a validated Kafka configuration (the root package's KafkaConfig
// documents each field and fills its defaults); a zero field that a comment
// gives a meaning here takes that meaning.
type Config struct {
	Brokers  []string
	ClientID string
	// Source is the ce_source of published events.
	Source string
	// Format is the layout of published records; consumers read every
	// layout.
	Format Format
	// SkipData leaves Event.Data nil on consumed events (handlers read
	// Raw, through Event.Unmarshal); CheckJSON then still checks that the
	// value is JSON, so that one that is not is reported to Deliver.
	SkipData  bool
	CheckJSON bool

	DisableTopicCreation bool
	Partitions           int32 // 0: the broker's default
	ReplicationFactor    int16 // 0: the broker's default
	TopicConfigs         map[string]string

	// Earliest makes a brand-new group start at the oldest records instead
	// of the end of the log.
	Earliest          bool
	CommitInterval    time.Duration
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	JoinTimeout       time.Duration
	FetchMaxWait      time.Duration

	Linger time.Duration
	// MaxBufferedRecords bounds the records published and not yet
	// acknowledged; 0 means 50,000.
	MaxBufferedRecords int
	// DeliveryTimeout bounds a record's produce attempts.
	DeliveryTimeout time.Duration

	TLS  *tls.Config
	SASL sasl.Mechanism

	ClientOptions   []kgo.Opt
	ProducerOptions []kgo.Opt
	ConsumerOptions []kgo.Opt
}

// ErrKafka is wrapped by every *Error.
var ErrKafka = errors.New("eventstream: kafka operation failed")

// Error reports a Kafka operation that failed: what was attempted, the
// topic, and the client's or broker's error, which errors.Is and errors.As
// reach (franz-go's kerr errors, context errors) beside ErrKafka.
type Error struct {
	Op    string
	Topic string
	Err   error
}

// rejected reports whether the broker or the client refused a record
// itself (too large, invalid): producing the same record again cannot
// succeed, unlike a missing topic, an unreachable broker or a denied
// authorization, which an operator or time can fix.
func rejected(err error) bool {
	for _, k := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord,
		kerr.CorruptMessage, kerr.InvalidTimestamp, kerr.UnsupportedCompressionType} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

func (e *Error) Error() string {
	if e.Topic != "" {
		return fmt.Sprintf("eventstream: kafka: %s (topic %q): %v", e.Op, e.Topic, e.Err)
	}
	return fmt.Sprintf("eventstream: kafka: %s: %v", e.Op, e.Err)
}

// Unwrap reaches ErrKafka, the cause, and transport.ErrRejected when the
// record itself was refused.
func (e *Error) Unwrap() []error {
	if e.Op == "produce" && rejected(e.Err) {
		return []error{ErrKafka, transport.ErrRejected, e.Err}
	}
	return []error{ErrKafka, e.Err}
}

// Transport is the Kafka transport. It implements transport.Transport and
// the optional GroupNamer, ServerAddresser, QueueDepther and LagReporter.
type Transport struct {
	host       transport.Host
	cfg        Config
	codec      *codec
	base       []kgo.Opt // options of every client: seeds, security, logger, hooks
	prod       *kgo.Client
	cancelProd context.CancelFunc // the producer client's context
	adm        *kadm.Client
	instance   string // makes private group names unique across processes
	addrHost   string
	addrPort   int

	// room bounds the records handed to the producer and not yet
	// acknowledged, so that Publish waits for room under the caller's
	// context without ever handing that context to franz-go.
	room room
	// records are the pooled outRecords; promise is the one promise
	// function of every record (a method value made once).
	records sync.Pool
	promise func(*kgo.Record, error)

	// ctx ends with Close: topic setups and members that outlive the call
	// that started them stop with it.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	topicsMu sync.Mutex
	topics   sync.Map // topic → *string (the topic): known to exist
	// lastTopic is the topic most recently found in topics: a publisher
	// of one topic compares a string instead of looking it up.
	lastTopic atomic.Pointer[string]
	creating  map[string]*topicCall

	// pubMu orders Publish's hand-off to the producer before Close's
	// flush: once Close holds it, no record is handed over any more.
	pubMu    sync.RWMutex
	draining atomic.Bool
	closed   atomic.Bool
	// async counts the asynchronous records whose callback has not run.
	async sync.WaitGroup

	// ends are the subscribed topics' end offsets, listed for the lag
	// gauge (lag.go).
	ends endOffsets

	mu        sync.Mutex
	consumers map[*transport.Sub]*consumer
	closeOnce sync.Once
	closeErr  error
}

type topicCall struct {
	done chan struct{}
	err  error
}

// Bounds of the calls the transport makes on its own account.
const (
	connectTimeout    = 10 * time.Second // the connectivity check in New
	topicSetupTimeout = 30 * time.Second // one topic's creation or lookup
	clientOpTimeout   = 10 * time.Second // a commit, leaving a group
	// closeFloor is the least time Close's final steps (commit, leave,
	// flush) get when Drain used all of ShutdownTimeout.
	closeFloor         = time.Second
	defaultMaxBuffered = 50000 // franz-go's default MaxBufferedRecords
)

var (
	_ transport.Transport       = (*Transport)(nil)
	_ transport.GroupNamer      = (*Transport)(nil)
	_ transport.ServerAddresser = (*Transport)(nil)
	_ transport.QueueDepther    = (*Transport)(nil)
	_ transport.LagReporter     = (*Transport)(nil)
	_ transport.AgeReporter     = (*Transport)(nil)
)

// New connects to the cluster and returns the transport. An error from
// franz-go's option validation is returned as it is (a configuration
// error); a cluster that cannot be reached is an *Error.
func New(h transport.Host, cfg Config) (*Transport, error) {
	t := &Transport{
		host:      h,
		cfg:       cfg,
		codec:     newCodec(cfg),
		creating:  map[string]*topicCall{},
		consumers: map[*transport.Sub]*consumer{},
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	t.instance = hex.EncodeToString(id[:])
	if host, port, err := net.SplitHostPort(cfg.Brokers[0]); err == nil {
		t.addrHost = host
		t.addrPort, _ = strconv.Atoi(port)
	} else {
		t.addrHost = cfg.Brokers[0]
	}
	limit := cfg.MaxBufferedRecords
	if limit <= 0 {
		limit = defaultMaxBuffered
	}
	t.room = room{limit: int64(limit), freed: make(chan struct{}, 1)}
	t.records.New = func() any { return newOutRecord() }
	t.promise = t.produced

	t.base = []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(kgoLogger{h.Logger}),
	}
	if cfg.TLS != nil {
		t.base = append(t.base, kgo.DialTLSConfig(cfg.TLS.Clone()))
	}
	if cfg.SASL != nil {
		t.base = append(t.base, kgo.SASL(cfg.SASL))
	}
	if h.MeterProvider != nil {
		// Broker-level client counters (connects, bytes, batches). kotel's
		// Tracer is deliberately not used: the bus makes its own spans.
		k := kotel.NewKotel(kotel.WithMeter(kotel.NewMeter(kotel.MeterProvider(h.MeterProvider))))
		t.base = append(t.base, kgo.WithHooks(k.Hooks()...))
	}
	t.base = append(t.base, cfg.ClientOptions...)

	var prodCtx context.Context
	prodCtx, t.cancelProd = context.WithCancel(context.Background())
	popts := append([]kgo.Opt(nil), t.base...)
	popts = append(popts,
		// Cancelled at Close once the flush is over, so that Close's own
		// goodbyes (a final telemetry push) cannot outlast its deadline.
		kgo.WithContext(prodCtx),
		kgo.ProducerLinger(cfg.Linger),
		// One above room's bound: franz-go calls a record's promise, which
		// frees room, just before it forgets the record, so its own bound
		// is never what a publisher waits for.
		kgo.MaxBufferedRecords(limit+1),
	)
	if cfg.DeliveryTimeout > 0 {
		// As Kafka's Java producer (delivery.timeout.ms), the timeout also
		// fails a record whose request is in flight, whose answer may
		// never come: without AllowIdempotentProduceCancellation franz-go
		// waits for it forever. Such a record may still have been written.
		popts = append(popts, kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout), kgo.AllowIdempotentProduceCancellation())
	}
	popts = append(popts, cfg.ProducerOptions...)
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		t.cancelProd()
		return nil, err
	}
	if len(cfg.ConsumerOptions) > 0 {
		// Validate the consumers' options now rather than at the first
		// On. Without topics to consume, the client joins nothing.
		check, err := kgo.NewClient(append(append([]kgo.Opt(nil), t.base...),
			append([]kgo.Opt{kgo.ConsumerGroup("eventstream-options-check"), kgo.DisableAutoCommit()}, cfg.ConsumerOptions...)...)...)
		if err != nil {
			t.cancelProd()
			prod.Close()
			return nil, fmt.Errorf("consumer options: %w", err)
		}
		check.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := prod.Ping(ctx); err != nil {
		t.cancelProd()
		prod.Close()
		op := "connect to " + fmt.Sprint(cfg.Brokers)
		switch {
		case cfg.SASL != nil && cfg.TLS != nil:
			op += " with TLS and SASL " + cfg.SASL.Name() + " (check both)"
		case cfg.SASL != nil:
			op += " with SASL " + cfg.SASL.Name() + " (check the mechanism and credentials)"
		case cfg.TLS != nil:
			op += " with TLS"
		}
		return nil, &Error{Op: op, Err: err}
	}
	t.prod = prod
	t.adm = kadm.NewClient(prod)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.bg.Add(1)
	go t.lagLoop()
	return t, nil
}

// System implements transport.Transport.
func (t *Transport) System() string { return telemetry.SystemKafka }

// ServerAddress implements transport.ServerAddresser: the first seed broker.
func (t *Transport) ServerAddress() (string, int) { return t.addrHost, t.addrPort }

// PrivateGroup implements transport.GroupNamer: unique to the subscription
// and to this process, so that two processes never share it.
func (t *Transport) PrivateGroup(topic, id string) string {
	return topic + "." + t.instance + "." + id
}

// Publish implements transport.Transport: one record, acknowledged by the
// broker before it returns, or handed to the producer when po.Done is set.
//
// The caller's ctx bounds only the caller's waits (topic setup, room in
// the producer's buffer, the acknowledgement). The record itself is
// produced under a context that is never cancelled: franz-go fails every
// record buffered for a partition, and the producer ID's initialization,
// when the context of the first one ends, so a cancelled Emit would fail
// others' records with it.
func (t *Transport) Publish(ctx context.Context, e *event.Event, po transport.PublishOptions) error {
	if t.refuses(po) {
		return transport.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: "produce", Topic: e.Topic, Err: err}
	}
	if err := t.ensureTopic(ctx, e.Topic); err != nil {
		return err
	}
	o := t.records.Get().(*outRecord)
	if err := t.codec.encode(o, e); err != nil {
		t.records.Put(o)
		return err
	}
	if err := t.room.take(ctx); err != nil {
		t.release(o)
		return &Error{Op: "produce", Topic: e.Topic, Err: fmt.Errorf(
			"%w while the producer held MaxBufferedRecords unacknowledged records", err)}
	}
	// The record's context keeps ctx's values (trace context) for hooks,
	// never its cancellation.
	o.parent, o.id, o.done = ctx, e.ID, po.Done

	if o.done != nil {
		return t.produce(o, po)
	}
	if o.acked == nil {
		o.acked = make(chan error, 1)
	}
	if err := t.produce(o, po); err != nil {
		return err
	}
	select {
	case err := <-o.acked:
		part, off := o.rec.Partition, o.rec.Offset
		t.release(o)
		if err != nil {
			return &Error{Op: "produce", Topic: e.Topic, Err: err}
		}
		e.Record = &event.Record{Partition: part, Offset: off}
		return nil
	case <-ctx.Done():
		// The record stays with franz-go and is never reused: its
		// promise may still run.
		return &Error{Op: "produce", Topic: e.Topic, Err: fmt.Errorf(
			"%w before the broker acknowledged (the record may still be written)", ctx.Err())}
	}
}

// refuses reports whether Publish is refused: from Drain on, except for
// dead letters and events emitted by handlers (Overflow), which Drain's
// own handlers write until Close.
func (t *Transport) refuses(o transport.PublishOptions) bool {
	return t.closed.Load() || t.draining.Load() && !o.Overflow
}

// produce hands o's record to the producer unless Close has begun.
func (t *Transport) produce(o *outRecord, po transport.PublishOptions) error {
	t.pubMu.RLock()
	defer t.pubMu.RUnlock()
	if t.refuses(po) {
		t.room.free()
		t.release(o)
		return transport.ErrClosed
	}
	if o.done != nil {
		t.async.Add(1) // under pubMu: Close waits only after taking it
	}
	t.prod.Produce(o, &o.rec, t.promise)
	return nil
}

// produced is the promise of every record: it frees the record's room and
// reports the outcome, to the asynchronous caller's callback (and the
// record goes back to the pool) or to the synchronous caller waiting in
// Publish (which puts it back).
func (t *Transport) produced(r *kgo.Record, err error) {
	t.room.free()
	o, _ := r.Context.Value(outRecordKey{}).(*outRecord)
	if o == nil {
		// Unreachable unless a hook replaced the record's context with
		// one that does not derive from it.
		t.host.Logger.Error("eventstream: a produced record lost its context; its outcome is not reported", "topic", r.Topic)
		return
	}
	if o.done == nil {
		o.acked <- err
		return
	}
	defer t.async.Done()
	if err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			err = fmt.Errorf("%w: the producer closed before the broker acknowledged the record (%w)", transport.ErrClosed, err)
		}
		err = &Error{Op: "produce", Topic: r.Topic, Err: err}
		t.host.Logger.LogAttrs(r.Context, slog.LevelWarn, "eventstream: asynchronous emit failed",
			slog.String("topic", r.Topic), slog.String("event_id", o.id), slog.String("error", err.Error()))
	}
	o.done(err)
	t.release(o)
}

// release puts a record whose promise ran (or that was never produced)
// back in the pool.
func (t *Transport) release(o *outRecord) {
	o.reset()
	t.records.Put(o)
}

// room counts the records handed to the producer and not yet
// acknowledged, up to limit. Taking and freeing room is one atomic
// operation per record; only a publisher that finds none waits, until a
// record is freed or its context is done.
type room struct {
	limit   int64
	used    atomic.Int64
	waiting atomic.Int64
	freed   chan struct{} // one token: room was freed while someone waited
}

// take takes room for one record, waiting until ctx is done.
func (r *room) take(ctx context.Context) error {
	if r.tryTake() {
		return nil
	}
	// Counted as waiting before looking again: a free either sees this
	// waiter and leaves a token, or happened before the look and is seen.
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	for {
		if r.tryTake() {
			// Several records may have been freed for one token: pass
			// it on to the next waiter.
			if r.waiting.Load() > 1 && r.used.Load() < r.limit {
				r.signal()
			}
			return nil
		}
		select {
		case <-r.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *room) tryTake() bool {
	for {
		n := r.used.Load()
		if n >= r.limit {
			return false
		}
		if r.used.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// free gives back one record's room.
func (r *room) free() {
	r.used.Add(-1)
	if r.waiting.Load() > 0 {
		r.signal()
	}
}

func (r *room) signal() {
	select {
	case r.freed <- struct{}{}:
	default: // a token is there already
	}
}

// ensureTopic makes sure topic exists, creating it unless that is disabled.
// Concurrent callers for one topic share one attempt, which runs on its own
// (bounded) context so that a caller that gives up does not fail the
// others; a failure is not remembered, so a later call tries again.
func (t *Transport) ensureTopic(ctx context.Context, topic string) error {
	if last := t.lastTopic.Load(); last != nil && *last == topic {
		return nil
	}
	return t.setUpTopic(ctx, topic)
}

// setUpTopic is ensureTopic past its fast path (kept apart so that topic
// does not escape to the heap on every call).
func (t *Transport) setUpTopic(ctx context.Context, topic string) error {
	if known, ok := t.topics.Load(topic); ok {
		t.lastTopic.Store(known.(*string))
		return nil
	}
	t.topicsMu.Lock()
	call, running := t.creating[topic]
	if !running {
		call = &topicCall{done: make(chan struct{})}
		t.creating[topic] = call
		t.bg.Add(1)
		go func() {
			defer t.bg.Done()
			sctx, cancel := context.WithTimeout(t.ctx, topicSetupTimeout)
			call.err = t.setupTopic(sctx, topic)
			cancel()
			if call.err == nil {
				t.topics.Store(topic, &topic)
			}
			t.topicsMu.Lock()
			delete(t.creating, topic)
			t.topicsMu.Unlock()
			close(call.done)
		}()
	}
	t.topicsMu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return &Error{Op: "set up topic", Topic: topic, Err: ctx.Err()}
	}
}

func (t *Transport) setupTopic(ctx context.Context, topic string) error {
	if t.cfg.DisableTopicCreation {
		if err := t.topicExists(ctx, topic); err != nil {
			return &Error{Op: "look up topic", Topic: topic, Err: fmt.Errorf(
				"%w (topic creation is disabled: create the topic, or unset KafkaConfig.DisableTopicCreation)", err)}
		}
		return nil
	}
	// Create first and look up only on failure: a lookup of a missing
	// topic would leave franz-go's metadata cache believing it missing.
	partitions, rf := t.cfg.Partitions, t.cfg.ReplicationFactor
	if partitions == 0 {
		partitions = -1
	}
	if rf == 0 {
		rf = -1
	}
	var configs map[string]*string
	if len(t.cfg.TopicConfigs) > 0 {
		configs = make(map[string]*string, len(t.cfg.TopicConfigs))
		for k, v := range t.cfg.TopicConfigs {
			configs[k] = kadm.StringPtr(v)
		}
	}
	resp, err := t.adm.CreateTopic(ctx, partitions, rf, configs, topic)
	switch {
	case err == nil:
	case errors.Is(err, kerr.TopicAlreadyExists):
		return nil
	default:
		// Perhaps the topic exists and we may only not create topics.
		if t.topicExists(ctx, topic) == nil {
			return nil
		}
		if resp.ErrMessage != "" {
			err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
		}
		return &Error{Op: "create missing topic", Topic: topic, Err: err}
	}
	// Wait until metadata shows the new topic's partitions, so that the
	// first record or offset lookup does not race the creation.
	for {
		if t.topicExists(ctx, topic) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return &Error{Op: "create missing topic", Topic: topic, Err: ctx.Err()}
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// topicExists asks a broker directly (kadm's lookups are cached, and a
// topic created a moment ago would stay missing for seconds).
func (t *Transport) topicExists(ctx context.Context, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, t.prod)
	if err != nil {
		return err
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil || *rt.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return err
		}
		if len(rt.Partitions) == 0 {
			return kerr.UnknownTopicOrPartition
		}
		return nil
	}
	return kerr.UnknownTopicOrPartition
}

// Subscribe implements transport.Transport: it joins the subscription's
// group and returns once the member has its first assignment and the
// starting positions of a new group are committed.
func (t *Transport) Subscribe(s *transport.Sub) error {
	if t.closed.Load() {
		return transport.ErrClosed
	}
	ctx, cancel := context.WithTimeout(t.host.BaseCtx, t.cfg.JoinTimeout)
	defer cancel()
	if err := t.ensureTopic(ctx, s.Topic); err != nil {
		return err
	}
	c, err := newConsumer(t, s)
	if err != nil {
		return err
	}
	select {
	case <-c.ready:
		err = c.awaitStarts(ctx)
	case err = <-c.joinErr:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		c.stop(time.Now().Add(clientOpTimeout))
		if ctx.Err() != nil {
			err = fmt.Errorf("no assignment and starting positions within %v: %w", t.cfg.JoinTimeout, ctx.Err())
		}
		return &Error{Op: "join consumer group " + strconv.Quote(s.Group), Topic: s.Topic, Err: err}
	}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		c.stop(time.Now().Add(clientOpTimeout))
		return transport.ErrClosed
	}
	t.consumers[s] = c
	t.mu.Unlock()
	return nil
}

// Unsubscribe implements transport.Transport: the member stops fetching;
// the records it fetched are handled within the host's ShutdownTimeout
// (those that have not started by then stay uncommitted, for the group's
// other members); it waits for the handlers in flight, however long they
// take, commits and leaves its group. Called from a handler of the bus,
// it leaves the records that have not started at once and returns when the
// member's handlers in flight are done (all but the caller, when it is one
// of them); the member leaves the group once the calling handler returned
// too, so that its event is committed.
func (t *Transport) Unsubscribe(s *transport.Sub) error {
	t.mu.Lock()
	c := t.consumers[s]
	delete(t.consumers, s)
	if c != nil {
		t.bg.Add(1) // under mu: Close waits for it once it took the map
	}
	t.mu.Unlock()
	if c == nil {
		if s.Left != nil {
			s.Left() // Close took it, or it never subscribed
		}
		return nil
	}
	if lanes.InHandler() {
		// The caller may hold the worker the queue waits for: what has
		// not started stays uncommitted, for the group's next owner of
		// its partitions.
		c.stopFetching()
		c.abandonQueued()
		c.waitOthers(c.callerLane())
		// The handlers still running past the shutdown timeout see their
		// context end (leave.go).
		ending := time.AfterFunc(t.host.ShutdownTimeout, c.endHandlers)
		go func() {
			defer t.bg.Done()
			defer ending.Stop()
			c.waitHandlers(-1)
			c.waitParked(t.host.ShutdownTimeout)
			c.giveUpParked()
			c.leave(time.Now().Add(clientOpTimeout))
			if s.Left != nil {
				s.Left()
			}
		}()
		return nil
	}
	defer t.bg.Done()
	c.stopFetching()
	deadline := time.Now().Add(t.host.ShutdownTimeout)
	c.waitQueued(t.host.ShutdownTimeout)
	c.waitParked(time.Until(deadline))
	c.abandonQueued()
	// The handlers still running had their time: their context ends, and
	// one that answers with its error leaves its record uncommitted.
	c.endHandlers()
	c.waitHandlers(-1)
	left := c.giveUpParked()
	c.leave(time.Now().Add(clientOpTimeout))
	if s.Left != nil {
		s.Left()
	}
	if left > 0 {
		return &transport.UnhandledError{Unhandled: left}
	}
	return nil
}

// Drain implements transport.Transport. The events accepted on Kafka are
// the records in the subscribed topics when Drain began: each member
// consumes its partitions up to those end offsets, and no further, and
// waits until their handlers finished.
func (t *Transport) Drain(ctx context.Context) int {
	t.draining.Store(true)
	t.mu.Lock()
	cs := make([]*consumer, 0, len(t.consumers))
	topicSet := map[string]bool{}
	for _, c := range t.consumers {
		cs = append(cs, c)
		topicSet[c.sub.Topic] = true
	}
	t.mu.Unlock()
	if len(cs) == 0 {
		return 0
	}
	topics := make([]string, 0, len(topicSet))
	for topic := range topicSet {
		topics = append(topics, topic)
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ends, err := t.adm.ListEndOffsets(lctx, topics...)
	cancel()
	if err != nil {
		t.host.Logger.Warn("eventstream: close: listing end offsets failed; draining what was fetched", "error", err)
	}
	for _, c := range cs {
		c.setDrainEnds(ends)
	}
	return lanes.PollUntil(ctx, 2*time.Millisecond, func() int {
		pending := 0
		for _, c := range cs {
			pending += c.pending()
		}
		return pending
	})
}

// Close implements transport.Transport: members stop, commit and leave
// their groups (handlers still running when ctx is done are left behind,
// their events uncommitted), then the producer flushes and closes.
func (t *Transport) Close(ctx context.Context) error {
	t.closeOnce.Do(func() { t.closeErr = t.close(ctx) })
	return t.closeErr
}

func (t *Transport) close(ctx context.Context) error {
	t.draining.Store(true)
	t.pubMu.Lock()
	t.closed.Store(true)
	t.pubMu.Unlock()
	t.mu.Lock()
	cs := t.consumers
	t.consumers = map[*transport.Sub]*consumer{}
	t.mu.Unlock()
	// Every step below is bounded by what is left of ctx, except that the
	// final commit, leave and flush get at least closeFloor even when
	// Drain used it all: a handler stuck until the timeout must not cost
	// the commits of everything handled before it.
	by := deadlineOf(ctx)
	if floor := time.Now().Add(closeFloor); by.Before(floor) {
		by = floor
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			// Drain has run: what is still queued arrived after Close
			// began, or is stuck; it is left for the group's next member.
			c.stop(by)
		})
	}
	wg.Wait()
	t.cancel() // topic setups, and members that left from a handler
	t.bg.Wait()

	fctx, cancel := context.WithDeadline(context.Background(), by)
	defer cancel()
	var err error
	if ferr := t.prod.Flush(fctx); ferr != nil {
		err = &Error{Op: "flush producer", Err: ferr}
	}
	// Close fails the records still buffered; their promises run on
	// franz-go's goroutine, so wait for the asynchronous callbacks: a
	// program that exits once Close returns must have heard of each.
	t.cancelProd()
	t.prod.Close()
	if !waitGroupFor(&t.async, max(time.Until(by), closeFloor)) {
		t.host.Logger.Error("eventstream: close: asynchronous emit callbacks still running; returning without them")
	}
	return err
}

func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(clientOpTimeout)
	}
	return d
}

// waitGroupFor waits for wg up to d; false when d ran out first (the
// waiting goroutine then ends with wg).
func waitGroupFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// QueueDepth implements transport.QueueDepther: the records fetched for s
// and not yet handled.
func (t *Transport) QueueDepth(s *transport.Sub) int64 {
	t.mu.Lock()
	c := t.consumers[s]
	t.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.queued()
}

// ReportAge implements transport.AgeReporter: per topic and group, the
// oldest record not done among the partitions this process's members own
// (partState.oldest says how it is estimated before it is fetched).
func (t *Transport) ReportAge(now time.Time, observe func(topic, group string, age time.Duration)) {
	t.mu.Lock()
	cs := make([]*consumer, 0, len(t.consumers))
	for _, c := range t.consumers {
		cs = append(cs, c)
	}
	t.mu.Unlock()
	type key struct{ topic, group string }
	ages := make(map[key]time.Duration, len(cs))
	for _, c := range cs {
		k := key{c.sub.Topic, c.sub.Group}
		age := ages[k]
		for _, ps := range c.owned() {
			if ts := ps.oldest(); ts > 0 {
				age = max(age, now.Sub(time.Unix(0, ts)))
			}
		}
		ages[k] = age
	}
	for k, age := range ages {
		observe(k.topic, k.group, age)
	}
}

// kgoLogger sends franz-go's own logs, warnings and up (info and up when the
// logger is at debug), to the bus's logger.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelDebug // franz-go's info is chatty: group sessions, metadata
	}
	k.l.Log(context.Background(), l, "eventstream: kafka client: "+msg, keyvals...)
}
