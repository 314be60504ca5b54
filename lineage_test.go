package eventstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/history"
	"libx.net/eventstream/telemetry"
)

// chain is three topics whose handlers emit to the next: order → payment
// (whose first attempt fails, so that the event comes from a retry) →
// receipt.
type chain struct {
	order, payment, receipt string
	mu                      sync.Mutex
	got                     map[string][]*eventstream.Event // by topic
	done                    chan struct{}
	want                    int // receipts
}

func newChain(t *testing.T, b eventstream.EventBus, receipts int) *chain {
	t.Helper()
	base := eventstreamtest.Topic(t)
	c := &chain{order: base + ".order", payment: base + ".payment", receipt: base + ".receipt",
		got: map[string][]*eventstream.Event{}, done: make(chan struct{}), want: receipts}
	fast := &eventstream.RetryPolicy{MaxRetries: 2, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond, BackoffStrategy: "constant"}
	failed := map[string]bool{}
	on := func(topic string, h eventstream.EventHandler) {
		if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
			c.mu.Lock()
			c.got[topic] = append(c.got[topic], e)
			c.mu.Unlock()
			return h(ctx, e)
		}, eventstream.WithRetryPolicy(fast)); err != nil {
			t.Fatal(err)
		}
	}
	on(c.receipt, func(context.Context, *eventstream.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.got[c.receipt]) == c.want {
			close(c.done)
		}
		return nil
	})
	on(c.payment, func(ctx context.Context, e *eventstream.Event) error {
		c.mu.Lock()
		first := !failed[e.ID]
		failed[e.ID] = true
		c.mu.Unlock()
		if first {
			return errors.New("card declined, once")
		}
		return b.Emit(ctx, c.receipt, "receipt")
	})
	on(c.order, func(ctx context.Context, e *eventstream.Event) error {
		return b.Emit(ctx, c.payment, "payment")
	})
	return c
}

func (c *chain) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the chain did not complete")
	}
}

// only returns the one event handled on topic whose correlation id is corr
// (the first attempt's, for a retried one).
func (c *chain) only(t *testing.T, topic, corr string) *eventstream.Event {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.got[topic] {
		if e.CorrelationID == corr {
			return e
		}
	}
	t.Fatalf("no event on %s with correlation id %q", topic, corr)
	return nil
}

// testLineage: an Emit outside handlers starts a chain; an Emit with a
// handler's context (a retry's included) is caused by the handled event and
// stays in its chain; WithCorrelationID names a chain.
func testLineage(t *testing.T, b eventstream.EventBus, rec *tracetest.SpanRecorder) {
	c := newChain(t, b, 2)
	ctx := context.Background()
	if err := b.Emit(ctx, c.order, "plain"); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(ctx, c.order, "named", eventstream.WithCorrelationID("req-42")); err != nil {
		t.Fatal(err)
	}
	c.wait(t)

	c.mu.Lock()
	var order *eventstream.Event
	for _, e := range c.got[c.order] {
		if e.CorrelationID != "req-42" {
			order = e
		}
	}
	c.mu.Unlock()
	if order == nil {
		t.Fatal("the plain order was not handled")
	}
	if order.CausationID != "" || order.CorrelationID != order.ID {
		t.Errorf("chain start: causation %q correlation %q, want \"\" and its id %q", order.CausationID, order.CorrelationID, order.ID)
	}
	pay := c.only(t, c.payment, order.ID)
	if pay.CausationID != order.ID {
		t.Errorf("payment: causation %q, want the order %q", pay.CausationID, order.ID)
	}
	rcpt := c.only(t, c.receipt, order.ID)
	if rcpt.CausationID != pay.ID {
		t.Errorf("receipt (emitted by a retry): causation %q, want the payment %q", rcpt.CausationID, pay.ID)
	}

	named := c.only(t, c.order, "req-42")
	if named.CausationID != "" {
		t.Errorf("named order: causation %q", named.CausationID)
	}
	npay := c.only(t, c.payment, "req-42")
	nrcpt := c.only(t, c.receipt, "req-42")
	if npay.CausationID != named.ID || nrcpt.CausationID != npay.ID {
		t.Errorf("named chain: payment caused by %q (want %q), receipt by %q (want %q)", npay.CausationID, named.ID, nrcpt.CausationID, npay.ID)
	}
	if rec != nil {
		checkLineageSpans(t, c, rec, order, pay, rcpt)
	}
	checkLineageHistory(t, b, pay, rcpt)
	checkEventView(t, b, order, pay, rcpt, rec != nil)
}

// checkEventView: the debug page's view of the chain's first event holds
// its send, its attempt and the tree below it, with outcomes and traces.
func checkEventView(t *testing.T, b eventstream.EventBus, order, pay, rcpt *eventstream.Event, traced bool) {
	t.Helper()
	srv := httptest.NewServer(eventstream.DebugHandler(b))
	defer srv.Close()
	var v history.EventView
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(srv.URL + "/events/" + url.PathEscape(order.ID))
		if err != nil {
			t.Fatal(err)
		}
		v = history.EventView{}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Settled once the receipt's attempt is in.
		if len(v.Caused) == 1 && len(v.Caused[0].Caused) == 1 && len(v.Caused[0].Caused[0].Groups) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event view of %s: %+v", order.ID, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !v.Found || len(v.Sends) != 1 || len(v.Groups) != 1 || v.Groups[0].Status != history.StatusOK || v.CorrelationID != order.ID {
		t.Errorf("view: found %v, %d sends, groups %+v, correlation %q", v.Found, len(v.Sends), v.Groups, v.CorrelationID)
	}
	p := v.Caused[0]
	if p.ID != pay.ID || p.Status != history.StatusOK || p.Groups[0].Attempts != 2 || p.Caused[0].ID != rcpt.ID {
		t.Errorf("tree: %+v", v.Caused)
	}
	if traced && (v.TraceID == "" || p.TraceID == "") {
		t.Errorf("no trace ids in the view: %q %q", v.TraceID, p.TraceID)
	}
}

// checkLineageSpans: send and process spans carry the lineage ids.
func checkLineageSpans(t *testing.T, c *chain, rec *tracetest.SpanRecorder, order, pay, rcpt *eventstream.Event) {
	t.Helper()
	waitSpans(t, rec, "process "+c.receipt, 2)
	for _, want := range []*eventstream.Event{order, pay, rcpt} {
		for _, op := range []string{"send ", "process "} {
			found := false
			for _, s := range spansNamed(rec, op+want.Topic) {
				if attr(s, "messaging.message.id") != want.ID {
					continue
				}
				found = true
				if attr(s, telemetry.AttrCausationID) != want.CausationID || attr(s, telemetry.AttrCorrelationID) != want.CorrelationID {
					t.Errorf("span %q of %s: causation %q correlation %q; want %q %q", s.Name(), want.ID,
						attr(s, telemetry.AttrCausationID), attr(s, telemetry.AttrCorrelationID), want.CausationID, want.CorrelationID)
				}
			}
			if !found {
				t.Errorf("no %q span of %s", op+want.Topic, want.ID)
			}
		}
	}
}

// checkLineageHistory: the history's entries keep the lineage ids.
func checkLineageHistory(t *testing.T, b eventstream.EventBus, events ...*eventstream.Event) {
	t.Helper()
	mb := b.(eventstream.MemoryEventBus)
	deadline := time.Now().Add(5 * time.Second)
	for _, want := range events {
		for {
			var sends, procs int
			for _, h := range mb.GetHistory(1000) {
				if h.EventID != want.ID {
					continue
				}
				if h.CausationID != want.CausationID || h.CorrelationID != want.CorrelationID {
					t.Fatalf("history %s of %s: causation %q correlation %q; want %q %q", h.Operation, want.ID,
						h.CausationID, h.CorrelationID, want.CausationID, want.CorrelationID)
				}
				if h.Operation == "send" {
					sends++
				} else {
					procs++
				}
			}
			if sends >= 1 && procs >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("history of %s: %d sends, %d attempts", want.ID, sends, procs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// tracing returns a span recorder and the option that records into it.
func tracing(t *testing.T) (*tracetest.SpanRecorder, eventstream.Option) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, eventstream.WithTracerProvider(tp)
}

func TestLineageMemory(t *testing.T) {
	rec, tp := tracing(t)
	b, err := eventstream.New(eventstream.DefaultConfig(), tp)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testLineage(t, b, rec)
}

// Without a tracer (the default): the history still keeps the lineage.
func TestLineageMemoryNoTracer(t *testing.T) {
	b, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testLineage(t, b, nil)
}

func TestLineageKafka(t *testing.T) {
	rec, tp := tracing(t)
	testLineage(t, newKafkaBus(t, eventstreamtest.KafkaCluster(t), nil, tp), rec)
}

func TestLineageKafkaCompact(t *testing.T) {
	rec, tp := tracing(t)
	testLineage(t, newKafkaBus(t, eventstreamtest.KafkaCluster(t), func(c *eventstream.Config) {
		c.Kafka.RecordFormat = eventstream.RecordFormatCompact
	}, tp), rec)
}

func TestKafkaRealLineage(t *testing.T) {
	rec, tp := tracing(t)
	testLineage(t, newKafkaBus(t, eventstreamtest.RealKafkaBrokers(t), nil, tp), rec)
}

// A dead letter continues its event's chain: caused by the event, with its
// correlation id, and the event's own causation id in a header for replays.
func testLineageDeadLetter(t *testing.T, b eventstream.EventBus) {
	topic := eventstreamtest.Topic(t)
	dead := make(chan *eventstream.Event, 1)
	if _, err := b.On(topic+".dlq", func(_ context.Context, e *eventstream.Event) error {
		dead <- e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	failing := make(chan *eventstream.Event, 1)
	if _, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
		select {
		case failing <- e:
		default:
		}
		return errors.New("always")
	}, eventstream.WithRetryPolicy(&eventstream.RetryPolicy{MaxRetries: 0})); err != nil {
		t.Fatal(err)
	}
	start := topic + ".start"
	if _, err := b.On(start, func(ctx context.Context, e *eventstream.Event) error {
		return b.Emit(ctx, topic, "doomed")
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), start, "go", eventstream.WithCorrelationID("req-7")); err != nil {
		t.Fatal(err)
	}
	var e, dl *eventstream.Event
	for _, ch := range []chan *eventstream.Event{failing, dead} {
		select {
		case got := <-ch:
			if e == nil {
				e = got
			} else {
				dl = got
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no dead letter")
		}
	}
	checkDeadLetterView(t, b, e, dl)

	// A replay is the original event again, its lineage included.
	if _, err := eventstream.Replay(context.Background(), b, topic+".dlq", eventstream.DeadLetterFilter{}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-failing:
		if r.ID != e.ID || r.CausationID != e.CausationID || r.CorrelationID != "req-7" {
			t.Errorf("replayed: id %q causation %q correlation %q; want %q %q req-7", r.ID, r.CausationID, r.CorrelationID, e.ID, e.CausationID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the replay did not arrive")
	}
	if dl.CausationID != e.ID || dl.CorrelationID != "req-7" || e.CorrelationID != "req-7" ||
		dl.Header(eventstream.HeaderDeadLetterCausationID) != e.CausationID || e.CausationID == "" {
		t.Errorf("dead letter: causation %q (want %q) correlation %q, original causation header %q (want %q)",
			dl.CausationID, e.ID, dl.CorrelationID, dl.Header(eventstream.HeaderDeadLetterCausationID), e.CausationID)
	}
}

func TestLineageDeadLetterMemory(t *testing.T) {
	b, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testLineageDeadLetter(t, b)
}

func TestLineageDeadLetterKafka(t *testing.T) {
	testLineageDeadLetter(t, newKafkaBus(t, eventstreamtest.KafkaCluster(t), nil))
}

// checkDeadLetterView: the event view lists the dead letter apart, and
// the attempt that failed.
func checkDeadLetterView(t *testing.T, b eventstream.EventBus, e, dl *eventstream.Event) {
	t.Helper()
	h := eventstream.DebugHandler(b)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/events/"+url.PathEscape(e.ID), nil))
		var v history.EventView
		if err := json.Unmarshal(rr.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if len(v.DeadLetters) == 1 && len(v.Groups) == 1 {
			if v.DeadLetters[0].EventID != dl.ID || v.Groups[0].Status != history.StatusError ||
				v.Groups[0].Attempts[0].Error != "always" || len(v.Caused) != 0 {
				t.Errorf("dead letter view: %+v", v)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letter view: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// On the wire: a caused event's record carries ce_causationid and
// ce_correlationid; a foreign producer's lineage headers reach the
// handler as the event's ids, and its record without them starts a chain.
func testLineageHeaders(t *testing.T, brokers []string) {
	b := newKafkaBus(t, brokers, nil)
	in, out := eventstreamtest.Topic(t), eventstreamtest.Topic(t)
	createTopic(t, brokers, in, 1)
	got := newEvents()
	if _, err := b.On(in, func(ctx context.Context, e *eventstream.Event) error {
		if err := got.handler(ctx, e); err != nil {
			return err
		}
		return b.Emit(ctx, out, "caused")
	}); err != nil {
		t.Fatal(err)
	}
	prod := rawClient(t, brokers)
	if err := prod.ProduceSync(context.Background(),
		&kgo.Record{Topic: in, Value: []byte(`{}`), Headers: []kgo.RecordHeader{
			{Key: "ce_id", Value: []byte("theirs-2")},
			{Key: "ce_causationid", Value: []byte("theirs-1")},
			{Key: "ce_correlationid", Value: []byte("http-req-9")},
		}},
		&kgo.Record{Topic: in, Value: []byte(`{}`)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	evs := got.wait(t, 2)
	if e := evs[0]; e.ID != "theirs-2" || e.CausationID != "theirs-1" || e.CorrelationID != "http-req-9" || len(e.Headers) != 0 {
		t.Errorf("foreign lineage: id %q causation %q correlation %q headers %v", e.ID, e.CausationID, e.CorrelationID, e.Headers)
	}
	if e := evs[1]; e.CausationID != "" || e.CorrelationID != e.ID {
		t.Errorf("foreign record without lineage: causation %q correlation %q (id %q)", e.CausationID, e.CorrelationID, e.ID)
	}

	cl := rawClient(t, brokers, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 2 {
		fs := cl.PollFetches(pctx)
		if err := pctx.Err(); err != nil {
			t.Fatalf("%d records caused, want 2: %v", len(recs), err)
		}
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	byCause := map[string]map[string]string{}
	for _, r := range recs {
		h := headerMap(r)
		byCause[h["ce_causationid"]] = h
	}
	if h := byCause["theirs-2"]; h == nil || h["ce_correlationid"] != "http-req-9" {
		t.Errorf("record caused by theirs-2: headers %v", h)
	}
	if h := byCause[evs[1].ID]; h == nil || h["ce_correlationid"] != evs[1].ID {
		t.Errorf("record caused by %s: headers %v", evs[1].ID, h)
	}
}

func TestLineageKafkaHeaders(t *testing.T) { testLineageHeaders(t, eventstreamtest.KafkaCluster(t)) }

func TestKafkaRealLineageHeaders(t *testing.T) {
	testLineageHeaders(t, eventstreamtest.RealKafkaBrokers(t))
}
