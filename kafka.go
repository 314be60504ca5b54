//go:build kafkamove

// Excluded while the Kafka transport moves to internal/kafka; this file is deleted when it lands.

package eventstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel"

	"libx.net/eventstream/event"
	"libx.net/eventstream/telemetry"
)

// kafkaTransport is the distributed transport: one franz-go producer client
// for Emit and the admin calls, and one consumer client per subscription,
// each a member of the subscription's consumer group. Handlers run on an
// ants pool, like memory mode's.
type kafkaTransport struct {
	bus      *bus
	cfg      KafkaConfig
	base     []kgo.Opt // options of every client: seeds, security, logger, hooks
	prod     *kgo.Client
	adm      *kadm.Client
	pool     *ants.Pool
	instance string // makes private group names unique across processes
	host     string
	port     int

	topicsMu sync.Mutex
	topics   sync.Map // topic → struct{}: known to exist
	creating map[string]*topicCall

	mu        sync.Mutex
	consumers map[*subscription]*kconsumer
	private   map[string]bool // generated group names
	lagUnreg  func()
	closed    atomic.Bool
}

type topicCall struct {
	done chan struct{}
	err  error
}

// connectTimeout bounds the connectivity check in New.
const connectTimeout = 10 * time.Second

func newKafkaTransport(b *bus, kc KafkaConfig) (*kafkaTransport, error) {
	t := &kafkaTransport{
		bus: b, cfg: kc,
		creating:  map[string]*topicCall{},
		consumers: map[*subscription]*kconsumer{},
		private:   map[string]bool{},
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	t.instance = hex.EncodeToString(id[:])
	if host, port, err := net.SplitHostPort(kc.Brokers[0]); err == nil {
		t.host = host
		t.port, _ = strconv.Atoi(port)
	} else {
		t.host = kc.Brokers[0]
	}

	t.base = []kgo.Opt{
		kgo.SeedBrokers(kc.Brokers...),
		kgo.ClientID(kc.ClientID),
		kgo.WithLogger(kgoLogger{b.logger}),
	}
	if kc.TLS != nil {
		t.base = append(t.base, kgo.DialTLSConfig(kc.TLS.Clone()))
	}
	if kc.SASL != nil {
		t.base = append(t.base, kgo.SASL(saslMechanism(*kc.SASL)))
	}
	if !b.opts.telemetryOff {
		// Broker-level client counters (connects, bytes, batches). kotel's
		// Tracer is deliberately not used: the bus makes its own spans.
		mp := b.opts.meterProvider
		if mp == nil {
			mp = otel.GetMeterProvider()
		}
		k := kotel.NewKotel(kotel.WithMeter(kotel.NewMeter(kotel.MeterProvider(mp))))
		t.base = append(t.base, kgo.WithHooks(k.Hooks()...))
	}
	t.base = append(t.base, kc.ClientOptions...)

	popts := append([]kgo.Opt(nil), t.base...)
	linger := kc.Linger
	if kc.LowLatency {
		linger = 0
	}
	popts = append(popts, kgo.ProducerLinger(linger))
	if kc.MaxBufferedRecords > 0 {
		popts = append(popts, kgo.MaxBufferedRecords(kc.MaxBufferedRecords))
	}
	popts = append(popts, kc.ProducerOptions...)
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		return nil, &ConfigError{Field: "Kafka", Reason: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := prod.Ping(ctx); err != nil {
		prod.Close()
		op := "connect to " + fmt.Sprint(kc.Brokers)
		switch {
		case kc.SASL != nil && kc.TLS != nil:
			op += " with TLS and SASL " + kc.SASL.Mechanism + " (check both)"
		case kc.SASL != nil:
			op += " with SASL " + kc.SASL.Mechanism + " (check the mechanism and credentials)"
		case kc.TLS != nil:
			op += " with TLS"
		}
		return nil, &KafkaError{Op: op, Err: err}
	}
	t.prod = prod
	t.adm = kadm.NewClient(prod)
	t.pool, err = ants.NewPool(b.cfg.Pool.Size,
		ants.WithExpiryDuration(b.cfg.Pool.ExpiryDuration),
		ants.WithPreAlloc(b.cfg.Pool.PreAlloc))
	if err != nil {
		prod.Close()
		return nil, &ConfigError{Field: "Pool", Reason: err.Error()}
	}
	return t, nil
}

func saslMechanism(s SASLConfig) sasl.Mechanism {
	switch s.Mechanism {
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	default:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	}
}

func (t *kafkaTransport) system() string { return telemetry.SystemKafka }

// serverAddress feeds server.address and server.port on send spans.
func (t *kafkaTransport) serverAddress() (string, int) { return t.host, t.port }

// privateGroup names the group of a subscription without one: unique to the
// subscription and to this process, so two processes never share it.
func (t *kafkaTransport) privateGroup(topic, id string) string {
	g := topic + "." + t.instance + "." + id
	t.mu.Lock()
	t.private[g] = true
	t.mu.Unlock()
	return g
}

// poolStats feeds the eventstream.pool.* gauges.
func (t *kafkaTransport) poolStats() (running, capacity, waiting int64) {
	return int64(t.pool.Running()), int64(t.pool.Cap()), int64(t.pool.Waiting())
}

// publish implements transport: one record, acknowledged by the broker
// before it returns (or handed to the producer, for ContextWithAsyncEmit).
func (t *kafkaTransport) publish(ctx context.Context, e *Event) error {
	if err := t.ensureTopic(ctx, e.Topic); err != nil {
		return err
	}
	rec, err := t.encode(e)
	if err != nil {
		return err
	}
	if done := asyncEmitFrom(ctx); done != nil {
		t.prod.Produce(ctx, rec, func(r *kgo.Record, err error) {
			if err != nil {
				err = &KafkaError{Op: "produce", Topic: r.Topic, Err: err}
				t.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventstream: asynchronous emit failed",
					slog.String("topic", r.Topic), slog.String("event_id", e.ID), slog.String("error", err.Error()))
			}
			done(err)
		})
		return nil
	}
	// Not ProduceSync: it waits for a record the client has sent even
	// after ctx is done (an idempotent producer cannot withdraw it), and
	// Emit must return when its context says so.
	var perr error
	acked := make(chan struct{})
	t.prod.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		perr = err
		close(acked)
	})
	select {
	case <-acked:
	case <-ctx.Done():
		return &KafkaError{Op: "produce", Topic: e.Topic, Err: fmt.Errorf(
			"%w before the broker acknowledged (the record may still be written)", ctx.Err())}
	}
	if perr != nil {
		return &KafkaError{Op: "produce", Topic: e.Topic, Err: perr}
	}
	e.Record = &event.Record{Partition: rec.Partition, Offset: rec.Offset}
	return nil
}

// ensureTopic makes sure topic exists, creating it unless that is disabled.
// Concurrent callers for one topic share one attempt; a failure is not
// remembered, so a later call tries again.
func (t *kafkaTransport) ensureTopic(ctx context.Context, topic string) error {
	if _, ok := t.topics.Load(topic); ok {
		return nil
	}
	t.topicsMu.Lock()
	call, running := t.creating[topic]
	if !running {
		call = &topicCall{done: make(chan struct{})}
		t.creating[topic] = call
	}
	t.topicsMu.Unlock()
	if !running {
		call.err = t.setupTopic(ctx, topic)
		if call.err == nil {
			t.topics.Store(topic, struct{}{})
		}
		t.topicsMu.Lock()
		delete(t.creating, topic)
		t.topicsMu.Unlock()
		close(call.done)
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return &KafkaError{Op: "set up topic", Topic: topic, Err: ctx.Err()}
	}
}

func (t *kafkaTransport) setupTopic(ctx context.Context, topic string) error {
	if t.cfg.DisableTopicCreation {
		if err := t.topicExists(ctx, topic); err != nil {
			return &KafkaError{Op: "look up topic", Topic: topic, Err: fmt.Errorf(
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
		return &KafkaError{Op: "create missing topic", Topic: topic, Err: err}
	}
	// Wait until metadata shows the new topic's partitions, so that the
	// first record or offset lookup does not race the creation.
	for {
		if t.topicExists(ctx, topic) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return &KafkaError{Op: "create missing topic", Topic: topic, Err: ctx.Err()}
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// topicExists asks a broker directly (kadm's lookups are cached, and a
// topic created a moment ago would stay missing for seconds).
func (t *kafkaTransport) topicExists(ctx context.Context, topic string) error {
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

// subscribe implements transport: it joins the subscription's group and
// returns once the member has its first assignment and the starting
// positions of a new group are committed.
func (t *kafkaTransport) subscribe(s *subscription) error {
	if t.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(t.bus.baseCtx, t.cfg.JoinTimeout)
	defer cancel()
	if err := t.ensureTopic(ctx, s.topic); err != nil {
		return err
	}
	t.mu.Lock()
	private := t.private[s.group]
	t.mu.Unlock()
	c, err := newConsumer(t, s, private)
	if err != nil {
		return err
	}
	select {
	case <-c.ready:
	case err := <-c.joinErr:
		c.shutdown(true, 0)
		return &KafkaError{Op: "join consumer group " + quote(s.group), Topic: s.topic, Err: err}
	case <-ctx.Done():
		c.shutdown(true, 0)
		return &KafkaError{Op: "join consumer group " + quote(s.group), Topic: s.topic,
			Err: fmt.Errorf("no assignment within %v: %w", t.cfg.JoinTimeout, ctx.Err())}
	}
	t.mu.Lock()
	t.consumers[s] = c
	if t.lagUnreg == nil && t.bus.obs != nil {
		t.lagUnreg = t.bus.obs.tel.ObserveLag(t.observeLag)
	}
	t.mu.Unlock()
	if s.tel != nil {
		s.addRelease(s.tel.ObserveQueueDepth(c.queued))
	}
	return nil
}

// unsubscribe implements transport: the member stops fetching, finishes
// the handlers in flight, commits and leaves its group; the events it had
// fetched but not started go to the group's other members.
func (t *kafkaTransport) unsubscribe(s *subscription) error {
	t.mu.Lock()
	c := t.consumers[s]
	delete(t.consumers, s)
	t.mu.Unlock()
	if c == nil {
		return nil
	}
	c.shutdown(true, t.bus.cfg.ShutdownTimeout)
	return nil
}

// drain implements transport. The events "accepted" on Kafka are the
// records in the subscribed topics when Close began: each member consumes
// its partitions up to those end offsets, and no further, and waits until
// their handlers finished.
func (t *kafkaTransport) drain(ctx context.Context) int {
	t.mu.Lock()
	cs := make([]*kconsumer, 0, len(t.consumers))
	topicSet := map[string]bool{}
	for _, c := range t.consumers {
		cs = append(cs, c)
		topicSet[c.s.topic] = true
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
		t.bus.logger.Warn("eventstream: close: listing end offsets failed; draining what was fetched", "error", err)
	}
	for _, c := range cs {
		c.setDrainEnds(ends)
	}
	return waitDrained(ctx, 2*time.Millisecond, func() int {
		pending := 0
		for _, c := range cs {
			pending += c.pending()
		}
		return pending
	})
}

// close implements transport: members commit and leave their groups, then
// the producer flushes.
func (t *kafkaTransport) close() error {
	t.closed.Store(true)
	t.mu.Lock()
	cs := t.consumers
	t.consumers = map[*subscription]*kconsumer{}
	unreg := t.lagUnreg
	t.lagUnreg = nil
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// drain has run: what is left in the queues arrived after
			// Close began, or is stuck; it is left for the next member.
			c.shutdown(true, time.Second)
		}()
	}
	wg.Wait()
	if unreg != nil {
		unreg()
	}
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := t.prod.Flush(ctx); err != nil {
		errs = append(errs, &KafkaError{Op: "flush producer", Err: err})
	}
	t.prod.Close()
	if err := t.pool.ReleaseTimeout(5 * time.Second); err != nil {
		t.pool.Release()
	}
	return errors.Join(errs...)
}

// observeLag reports each member's lag: the partition's high watermark, as
// last fetched, minus the group's committed offset.
func (t *kafkaTransport) observeLag(observe func(topic, group string, partition int32, lag int64)) {
	t.mu.Lock()
	cs := make([]*kconsumer, 0, len(t.consumers))
	for _, c := range t.consumers {
		cs = append(cs, c)
	}
	t.mu.Unlock()
	for _, c := range cs {
		for _, ps := range c.owned() {
			hwm := ps.hwm.Load()
			committed := ps.committedOffset()
			if hwm < 0 || committed < 0 {
				continue
			}
			observe(c.s.topic, c.s.group, ps.partition, max(hwm-committed, 0))
		}
	}
}

// KafkaError reports a Kafka operation that failed: what was attempted, the
// topic, and the client's or broker's error, which errors.Is and errors.As
// reach (franz-go's kerr errors, context errors) beside ErrKafka.
type KafkaError struct {
	Op    string
	Topic string
	Err   error
}

func (e *KafkaError) Error() string {
	if e.Topic != "" {
		return fmt.Sprintf("eventstream: kafka: %s (topic %q): %v", e.Op, e.Topic, e.Err)
	}
	return fmt.Sprintf("eventstream: kafka: %s: %v", e.Op, e.Err)
}

func (e *KafkaError) Unwrap() []error { return []error{ErrKafka, e.Err} }

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
