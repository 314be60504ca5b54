package eventstream_test

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Helpers that several test files of the package use. Everything else a
// test needs sits beside it.

// quietBus is a bus logging nowhere: tests provoke failures on purpose.
func quietBus(t testing.TB, cfg *eventstream.Config, opts ...eventstream.Option) eventstream.EventBus {
	t.Helper()
	opts = append([]eventstream.Option{eventstream.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	b, err := eventstream.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// smallConfig is a memory-mode config with a pool of pool workers, lanes
// of buffer events, one fast retry and a ShutdownTimeout of 10 s.
func smallConfig(pool, buffer int) *eventstream.Config {
	cfg := eventstream.DefaultConfig()
	cfg.Pool.Size = pool
	cfg.Memory.BufferSize = buffer
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Retry = &eventstream.RetryPolicy{MaxRetries: 1, BackoffStrategy: "constant", InitialDelay: time.Millisecond}
	return cfg
}

// waitFor polls cond until it holds, or fails the test after d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// kafkaTestConfig is a distributed config tuned for tests: rebalances are
// noticed within 100ms.
func kafkaTestConfig(brokers []string) *eventstream.Config {
	cfg := eventstream.DefaultDistributedConfig(brokers)
	cfg.Kafka.HeartbeatInterval = 100 * time.Millisecond
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Kafka.CommitInterval = 200 * time.Millisecond
	return cfg
}

// kafkaTransport runs the conformance suite in Kafka mode on brokers.
func kafkaTransport(brokers []string, opts ...eventstream.Option) eventstreamtest.Transport {
	return kafkaTransportTuned(brokers, nil, opts...)
}

// kafkaTransportTuned is kafkaTransport with tune applied to each bus's
// config.
func kafkaTransportTuned(brokers []string, tune func(*eventstream.Config), opts ...eventstream.Option) eventstreamtest.Transport {
	return eventstreamtest.Transport{
		Timeout: 20 * time.Second,
		New: func(t *testing.T, s eventstreamtest.Setup) eventstream.EventBus {
			cfg := kafkaTestConfig(brokers)
			if tune != nil {
				tune(cfg)
			}
			if s.BufferSize > 0 {
				cfg.Memory.BufferSize = s.BufferSize
			}
			if s.ShutdownTimeout > 0 {
				cfg.ShutdownTimeout = s.ShutdownTimeout
			}
			b, err := eventstream.New(cfg, append(append([]eventstream.Option(nil), opts...), s.Options...)...)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

// compactConfig writes RecordFormatCompact.
func compactConfig(c *eventstream.Config) { c.Kafka.RecordFormat = eventstream.RecordFormatCompact }

// newKafkaBus builds a distributed bus for a test and closes it at cleanup.
func newKafkaBus(t testing.TB, brokers []string, tune func(*eventstream.Config), opts ...eventstream.Option) eventstream.EventBus {
	t.Helper()
	cfg := kafkaTestConfig(brokers)
	if tune != nil {
		tune(cfg)
	}
	b, err := eventstream.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// rawClient is a plain franz-go client for a test: producing, or consuming
// topics from the start.
func rawClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates topic with the given partitions, or fails t.
func createTopic(t testing.TB, brokers []string, topic string, partitions int32) {
	t.Helper()
	cl := rawClient(t, brokers)
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, -1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// events collects handled events.
type events struct {
	mu  sync.Mutex
	got []*eventstream.Event
	ch  chan struct{}
}

func newEvents() *events { return &events{ch: make(chan struct{}, 1)} }

func (c *events) handler(_ context.Context, e *eventstream.Event) error {
	c.mu.Lock()
	c.got = append(c.got, e)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
	return nil
}

func (c *events) wait(t testing.TB, n int) []*eventstream.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		if len(c.got) >= n {
			out := append([]*eventstream.Event(nil), c.got...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("got %d events, want %d", len(c.got), n)
		}
	}
}

// attr is the string value of a span's attribute ("" when absent).
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// collectMetrics collects rd once, by instrument name.
func collectMetrics(t testing.TB, rd *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// itoa formats n in base 10.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// quietKafkaBus is newKafkaBus logging nowhere.
func quietKafkaBus(t *testing.T, brokers []string, tune func(*eventstream.Config), opts ...eventstream.Option) eventstream.EventBus {
	t.Helper()
	return newKafkaBus(t, brokers, tune, append([]eventstream.Option{eventstream.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
}

// queueAdapter is an MQAdapter over an in-process queue — a second,
// memory-mode bus without telemetry — so the conformance suite can prove
// that the bus drives any adapter with the same semantics: the outer bus
// keeps chains, retries, dead letters and telemetry; the queue only moves.
type queueAdapter struct {
	q      eventstream.EventBus
	system string
}

// adapterCtxKey marks the context the adapter hands to the bus.
type adapterCtxKey struct{}

func newQueueAdapter(t *testing.T) *queueAdapter {
	cfg := eventstream.DefaultConfig()
	cfg.Memory.EnableHistory, cfg.Memory.EnableMetrics = false, false
	cfg.Retry = &eventstream.RetryPolicy{} // the outer bus retries
	q, err := eventstream.New(cfg, eventstream.WithoutTelemetry(), eventstream.WithoutDeadLetter(),
		eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return &queueAdapter{q: q, system: "inproc"}
}

func (a *queueAdapter) System() string { return a.system }

// Publish queues the event itself, so its id, time, key, data and headers
// reach the subscribers unchanged; the key also orders the queue.
func (a *queueAdapter) Publish(ctx context.Context, e *eventstream.Event) error {
	return a.q.Emit(ctx, e.Topic, e, eventstream.WithKey(e.Key))
}

func (a *queueAdapter) Subscribe(topic, group string, concurrency int, handle func(context.Context, *eventstream.Event)) (eventstream.MQSubscription, error) {
	sub, err := a.q.On(topic, func(ctx context.Context, queued *eventstream.Event) error {
		handle(context.WithValue(ctx, adapterCtxKey{}, "from-adapter"), queued.Data.(*eventstream.Event))
		return nil
	}, eventstream.WithConsumerGroup(group), eventstream.WithConcurrency(concurrency))
	if err != nil {
		return nil, err
	}
	return queueSub{a.q, sub}, nil
}

func (a *queueAdapter) Close() error { return a.q.Close() }

type queueSub struct {
	q   eventstream.EventBus
	sub eventstream.Subscription
}

func (s queueSub) Stop(context.Context) error { return s.q.Off(s.sub) }

// eachMode runs f against a memory bus and a Kafka bus on kfake; tune
// adjusts the config of either.
func eachMode(t *testing.T, tune func(*eventstream.Config), f func(t *testing.T, b eventstream.EventBus)) {
	t.Run("memory", func(t *testing.T) {
		cfg := eventstream.DefaultConfig()
		if tune != nil {
			tune(cfg)
		}
		b := quietBus(t, cfg)
		t.Cleanup(func() { _ = b.Close() })
		f(t, b)
	})
	t.Run("kafka", func(t *testing.T) {
		cfg := kafkaTestConfig(eventstreamtest.KafkaCluster(t))
		if tune != nil {
			tune(cfg)
		}
		b := quietBus(t, cfg)
		t.Cleanup(func() { _ = b.Close() })
		f(t, b)
	})
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// heapInUse is the live heap after two collections.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// spansNamed returns the ended spans called name.
func spansNamed(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// waitSpans waits up to 10 s for n ended spans called name.
func waitSpans(t testing.TB, sr *tracetest.SpanRecorder, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(spansNamed(sr, name)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %q spans, want %d", len(spansNamed(sr, name)), name, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lagPoints counts the per-partition points of a consumer-lag gauge.
func lagPoints(m metricdata.Metrics) int {
	g, ok := m.Data.(metricdata.Gauge[int64])
	if !ok {
		return 0
	}
	n := 0
	for _, dp := range g.DataPoints {
		if _, ok := dp.Attributes.Value(attribute.Key("messaging.destination.partition.id")); ok {
			n++
		}
	}
	return n
}

// ledger records emitted and handled event ids, to count by id what was
// lost and what was duplicated.
type ledger struct {
	mu      sync.Mutex
	emitted map[string]bool
	handled map[string]int
	notify  chan struct{}
}

func newLedger() *ledger {
	return &ledger{emitted: map[string]bool{}, handled: map[string]int{}, notify: make(chan struct{}, 1)}
}

func (l *ledger) emit(id string) {
	l.mu.Lock()
	l.emitted[id] = true
	l.mu.Unlock()
}

func (l *ledger) handle(id string) {
	l.mu.Lock()
	l.handled[id]++
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// missing returns the emitted ids not handled, and the duplicate count.
func (l *ledger) missing() (missing []string, dups int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.emitted {
		if l.handled[id] == 0 {
			missing = append(missing, id)
		}
	}
	for _, n := range l.handled {
		if n > 1 {
			dups += n - 1
		}
	}
	return missing, dups
}

// waitAll waits until every emitted id was handled.
func (l *ledger) waitAll(t *testing.T, timeout time.Duration, extra func()) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if extra != nil {
			extra()
		}
		missing, dups := l.missing()
		if len(missing) == 0 {
			l.mu.Lock()
			t.Logf("emitted %d, all handled (%d duplicate deliveries)", len(l.emitted), dups)
			l.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			n := min(len(missing), 5)
			t.Fatalf("%d emitted events never handled (%d duplicates), e.g. %v", len(missing), dups, missing[:n])
		}
		select {
		case <-l.notify:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// emitWithID emits and returns the id the bus gave the event; the bus must
// have been built with WithEmitMiddleware(captureIDs).
func emitWithID(b eventstream.EventBus, ctx context.Context, topic string, data any, id *string, opts ...eventstream.EmitOption) error {
	c := &idCapture{}
	if err := b.Emit(context.WithValue(ctx, idCaptureKey{}, c), topic, data, opts...); err != nil {
		return err
	}
	*id = c.id
	return nil
}

type idCaptureKey struct{}

type idCapture struct{ id string }

// captureIDs is an emit middleware that hands each event's id to an
// idCapture in the context.
func captureIDs(next eventstream.Handler) eventstream.Handler {
	return func(ctx context.Context, e *eventstream.Event) error {
		if c, ok := ctx.Value(idCaptureKey{}).(*idCapture); ok {
			c.id = e.ID
		}
		return next(ctx, e)
	}
}
