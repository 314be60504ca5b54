package eventstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/history"
)

func headerMap(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// An emitted event is a CloudEvents binary-mode record: JSON value, the key,
// ce_* headers, content-type and W3C trace context.
func TestKafkaRecordFormat(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	b := newKafkaBus(t, brokers, func(c *eventstream.Config) { c.Kafka.Source = "/orders" },
		eventstream.WithTracerProvider(tp))
	topic := eventstreamtest.Topic(t)
	if err := b.Emit(context.Background(), topic, map[string]any{"order_id": 7, "total": 12.5},
		eventstream.WithKey("order-7"), eventstream.WithHeaders(map[string]string{"tenant": "acme"})); err != nil {
		t.Fatal(err)
	}
	cl := rawClient(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rec *kgo.Record
	for rec == nil {
		fs := cl.PollFetches(pctx)
		if err := pctx.Err(); err != nil {
			t.Fatal("no record:", err)
		}
		fs.EachRecord(func(r *kgo.Record) { rec = r })
	}
	if string(rec.Key) != "order-7" {
		t.Errorf("key %q", rec.Key)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Value, &body); err != nil || body["order_id"] != 7.0 {
		t.Errorf("value %s: %v", rec.Value, err)
	}
	h := headerMap(rec)
	sends := spansNamed(sr, "send "+topic)
	if len(sends) != 1 {
		t.Fatalf("%d send spans", len(sends))
	}
	send := sends[0]
	want := map[string]string{
		"ce_specversion": "1.0",
		"ce_id":          attr(send, "messaging.message.id"),
		"ce_source":      "/orders",
		"ce_type":        topic,
		"content-type":   "application/json",
		"tenant":         "acme",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	if tm, err := time.Parse(time.RFC3339Nano, h["ce_time"]); err != nil || time.Since(tm) > time.Minute {
		t.Errorf("ce_time %q: %v", h["ce_time"], err)
	}
	tc := propagation.TraceContext{}.Extract(context.Background(), kotel.NewRecordCarrier(rec))
	if sc := trace.SpanContextFromContext(tc); sc.TraceID() != send.SpanContext().TraceID() || sc.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("traceparent %q does not name the send span", h["traceparent"])
	}
	// The send span knows where the record went.
	for _, k := range []string{"messaging.destination.partition.id", "messaging.kafka.offset", "messaging.kafka.message.key", "server.address", "server.port"} {
		if attr(send, k) == "" {
			t.Errorf("send span lacks %s", k)
		}
	}
	if attr(send, "messaging.system") != "kafka" {
		t.Errorf("messaging.system %q", attr(send, "messaging.system"))
	}
}

// Records written by other producers are delivered, never stuck: without
// headers, with a body that is not JSON, as CloudEvents.
func TestKafkaForeignRecords(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	b := newKafkaBus(t, brokers, nil)
	got := newEvents()
	if _, err := b.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	prod := rawClient(t, brokers)
	recs := []*kgo.Record{
		{Topic: topic, Value: []byte(`{"plain":true}`), Timestamp: ts},
		{Topic: topic, Value: []byte("hello, not json"), Key: []byte("k1")},
		{Topic: topic, Value: []byte(`{"ce":1}`), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("their-id-1")},
			{Key: "ce_source", Value: []byte("/elsewhere")}, {Key: "ce_type", Value: []byte("com.example.thing")},
			{Key: "ce_time", Value: []byte("2024-01-02T03:04:05.123Z")}, {Key: "content-type", Value: []byte("application/cloudevents+json")},
		}},
		{Topic: topic, Value: []byte("<xml/>"), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/xml")}}},
		{Topic: topic, Value: nil}, // tombstone
		{Topic: topic, Value: []byte{0xff, 0xfe, 0x00}},
		{Topic: topic, Value: []byte(`"last"`)},
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	evs := got.wait(t, len(recs))
	if e := evs[0]; e.Data.(map[string]any)["plain"] != true || !e.Time.Equal(ts) || e.ID != topic+"-0-"+itoa(e.Record.Offset) {
		t.Errorf("plain record: data %v time %v id %q", e.Data, e.Time, e.ID)
	}
	if e := evs[1]; e.Data != nil || string(e.Raw) != "hello, not json" || e.Key != "k1" {
		t.Errorf("text record: data %v raw %q key %q", e.Data, e.Raw, e.Key)
	} else if err := e.Unmarshal(new(any)); err == nil {
		t.Error("Unmarshal of a non-JSON body succeeded")
	}
	if e := evs[2]; e.ID != "their-id-1" || e.Time.UnixMilli() != time.Date(2024, 1, 2, 3, 4, 5, 123e6, time.UTC).UnixMilli() ||
		e.Header("ce_type") != "com.example.thing" || e.Data.(map[string]any)["ce"] != 1.0 {
		t.Errorf("cloudevent: id %q time %v type %q data %v", e.ID, e.Time, e.Header("ce_type"), e.Data)
	}
	if e := evs[3]; e.Data != nil || string(e.Raw) != "<xml/>" {
		t.Errorf("xml record: data %v raw %q", e.Data, e.Raw)
	}
	if e := evs[4]; e.Data != nil || len(e.Raw) != 0 {
		t.Errorf("tombstone: data %v raw %q", e.Data, e.Raw)
	}
	if e := evs[5]; e.Data != nil || len(e.Raw) != 3 {
		t.Errorf("binary: data %v raw %q", e.Data, e.Raw)
	}
	if e := evs[6]; e.Data != "last" {
		t.Errorf("last: data %v", e.Data)
	}
}

// With NonJSONDeadLetter, a record that is not JSON goes to the dead-letter
// topic with the reason, the handler never sees it, and the partition moves
// on.
func TestKafkaNonJSONDeadLetter(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	b := newKafkaBus(t, brokers, func(c *eventstream.Config) { c.Kafka.NonJSON = eventstream.NonJSONDeadLetter })
	got, dlq := newEvents(), newEvents()
	if _, err := b.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(topic+".dlq", dlq.handler); err != nil {
		t.Fatal(err)
	}
	prod := rawClient(t, brokers)
	if err := prod.ProduceSync(context.Background(),
		&kgo.Record{Topic: topic, Value: []byte("not json at all")},
		&kgo.Record{Topic: topic, Value: []byte(`{"ok":1}`)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	d := dlq.wait(t, 1)[0]
	ok := got.wait(t, 1)
	if len(ok) != 1 || ok[0].Data.(map[string]any)["ok"] != 1.0 {
		t.Fatalf("handled %v", ok)
	}
	if r := d.Header(eventstream.HeaderDeadLetterReason); !strings.Contains(r, "is not JSON") {
		t.Errorf("reason %q", r)
	}
	if string(d.Raw) != "not json at all" || d.Header(eventstream.HeaderDeadLetterTopic) != topic ||
		d.Header(eventstream.HeaderDeadLetterOffset) != "0" || d.Header(eventstream.HeaderDeadLetterPartition) != "0" {
		t.Errorf("dead letter raw %q headers %v", d.Raw, d.Headers)
	}
}

// A trace begun by a producer instrumented with kotel continues in our
// handler, and ours continues in a kotel-instrumented consumer: one header
// format.
func TestKafkaKotelInterop(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b := newKafkaBus(t, brokers, nil, eventstream.WithTracerProvider(tp))
	got := newEvents()
	if _, err := b.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	kt := kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(prop))
	prod := rawClient(t, brokers, kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(kt)).Hooks()...))
	ctx, root := tp.Tracer("test").Start(context.Background(), "checkout")
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(`{"x":1}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	root.End()
	got.wait(t, 1)
	waitSpans(t, sr, "process "+topic, 1)
	proc := spansNamed(sr, "process "+topic)[0]
	if proc.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Fatal("our process span is not in the kotel producer's trace")
	}

	// And the other way round.
	if err := b.Emit(context.Background(), topic+"-out", map[string]int{"y": 2}); err != nil {
		t.Fatal(err)
	}
	cons := rawClient(t, brokers, kgo.ConsumeTopics(topic+"-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(kt)).Hooks()...))
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rec *kgo.Record
	for rec == nil && pctx.Err() == nil {
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { rec = r })
	}
	if rec == nil {
		t.Fatal("no record")
	}
	_, span := kt.WithProcessSpan(rec)
	span.End()
	send := spansNamed(sr, "send "+topic+"-out")[0]
	if span.SpanContext().TraceID() != send.SpanContext().TraceID() {
		t.Fatal("kotel's process span is not in our send span's trace")
	}
}

// GetStats and GetHistory work in distributed mode with the default
// configuration (the bus builds its own providers).
func TestKafkaStatsAndHistory(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	b := newKafkaBus(t, brokers, nil)
	topic := eventstreamtest.Topic(t)
	got := newEvents()
	if _, err := b.On(topic, got.handler, eventstream.WithConsumerGroup("stats-"+topic)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := b.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	got.wait(t, 5)
	mb := b.(eventstream.MemoryEventBus)
	// The last process span ends just after its handler returned and its
	// metrics were recorded: wait for both views to settle.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := mb.GetStats()
		sends, procs := historyCounts(t, mb.GetHistory(100), "stats-"+topic)
		if s.Emitted == 5 && s.Delivered == 5 && s.Succeeded == 5 && sends == 5 && procs == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v; history has %d sends and %d process entries, want 5 and 5", s.Counts, sends, procs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func historyCounts(t *testing.T, h []eventstream.HistoryEntry, group string) (sends, procs int) {
	t.Helper()
	for _, e := range h {
		switch e.Operation {
		case "send":
			sends++
		case "process":
			procs++
			if e.Group != group || e.Status != history.StatusOK {
				t.Errorf("history entry %+v", e)
			}
		}
	}
	return sends, procs
}

// An asynchronous Emit returns before the acknowledgement and reports it
// to its callback; every event arrives.
func TestKafkaAsyncEmit(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	b := newKafkaBus(t, brokers, nil)
	topic := eventstreamtest.Topic(t)
	got := newEvents()
	if _, err := b.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	wg.Add(n)
	async := eventstream.WithAsync(func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		wg.Done()
	})
	for i := 0; i < n; i++ {
		if err := b.Emit(context.Background(), topic, i, async); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d failed, first: %v", len(errs), errs[0])
	}
	got.wait(t, n)
}

// Config errors name the field.
func TestKafkaConfigValidation(t *testing.T) {
	cases := map[string]func(*eventstream.KafkaConfig){
		"no brokers":         func(k *eventstream.KafkaConfig) { k.Brokers = nil },
		"empty broker":       func(k *eventstream.KafkaConfig) { k.Brokers = []string{""} },
		"negative partition": func(k *eventstream.KafkaConfig) { k.Partitions = -1 },
		"initial offset":     func(k *eventstream.KafkaConfig) { k.InitialOffset = "middle" },
		"sasl mechanism":     func(k *eventstream.KafkaConfig) { k.SASL = &eventstream.SASLConfig{Mechanism: "GSSAPI", Username: "u"} },
		"heartbeat":          func(k *eventstream.KafkaConfig) { k.HeartbeatInterval = time.Minute },
		"nil option":         func(k *eventstream.KafkaConfig) { k.ClientOptions = []kgo.Opt{nil} },
		"non-json policy":    func(k *eventstream.KafkaConfig) { k.NonJSON = 7 },
		"record format":      func(k *eventstream.KafkaConfig) { k.RecordFormat = "avro" },
		"data decoding":      func(k *eventstream.KafkaConfig) { k.DecodeData = 7 },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := eventstream.DefaultDistributedConfig([]string{"127.0.0.1:1"})
			mut(cfg.Kafka)
			_, err := eventstream.New(cfg)
			var ce *eventstream.ConfigError
			if !errors.Is(err, eventstream.ErrInvalidConfig) || !errors.As(err, &ce) || !strings.HasPrefix(ce.Field, "Kafka") {
				t.Fatalf("New: %v", err)
			}
		})
	}
}

// A bus that cannot reach its brokers says so at New.
func TestKafkaUnreachable(t *testing.T) {
	cfg := eventstream.DefaultDistributedConfig([]string{"127.0.0.1:1"})
	cfg.Kafka.ClientOptions = []kgo.Opt{kgo.DialTimeout(200 * time.Millisecond), kgo.RetryTimeout(time.Second)}
	start := time.Now()
	_, err := eventstream.New(cfg)
	if !errors.Is(err, eventstream.ErrKafka) {
		t.Fatalf("New: %v, want ErrKafka", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("New took %v", time.Since(start))
	}
}

// With topic creation disabled, a missing topic is a clear error.
func TestKafkaTopicCreationDisabled(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	b := newKafkaBus(t, brokers, func(c *eventstream.Config) { c.Kafka.DisableTopicCreation = true })
	topic := eventstreamtest.Topic(t)
	err := b.Emit(context.Background(), topic, 1)
	var ke *eventstream.KafkaError
	if !errors.Is(err, eventstream.ErrKafka) || !errors.As(err, &ke) || ke.Topic != topic || !strings.Contains(err.Error(), "creation is disabled") {
		t.Fatalf("Emit: %v", err)
	}
	if _, err := b.On(topic, func(context.Context, *eventstream.Event) error { return nil }); !errors.Is(err, eventstream.ErrKafka) {
		t.Fatalf("On: %v", err)
	}
	createTopic(t, brokers, topic, 1)
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatalf("Emit to an existing topic: %v", err)
	}
}

// A new group reads older records only with InitialOffsetEarliest.
func TestKafkaInitialOffset(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	b := newKafkaBus(t, brokers, nil)
	for i := 0; i < 3; i++ {
		if err := b.Emit(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	latest, earliest := newEvents(), newEvents()
	if _, err := b.On(topic, latest.handler); err != nil {
		t.Fatal(err)
	}
	e := newKafkaBus(t, brokers, func(c *eventstream.Config) { c.Kafka.InitialOffset = eventstream.InitialOffsetEarliest })
	if _, err := e.On(topic, earliest.handler); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, 3); err != nil {
		t.Fatal(err)
	}
	earliest.wait(t, 4)
	if got := latest.wait(t, 1); len(got) != 1 || got[0].Data != 3.0 {
		t.Fatalf("latest group got %d events", len(got))
	}
}
