package eventstream_test

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// pollOne reads the first record of topic with a plain client.
func pollOne(t *testing.T, brokers []string, topic string) *kgo.Record {
	t.Helper()
	cl := rawClient(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("no record:", err)
		}
		var rec *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if rec == nil {
				rec = r
			}
		})
		if rec != nil {
			return rec
		}
	}
}

// The compact format writes one header of its own beside the event's, and
// a subscriber reads the same event as from the CloudEvents format: id,
// time to the nanosecond, key, headers, data.
func TestKafkaCompactFormat(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	b := newKafkaBus(t, brokers, compactConfig)
	got := newEvents()
	if _, err := b.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	ids := make(chan string, 1)
	ctx := context.Background()
	if err := b.Emit(ctx, topic, map[string]any{"order_id": 7}, eventstream.WithKey("order-7"),
		eventstream.WithHeaders(map[string]string{"tenant": "acme"})); err != nil {
		t.Fatal(err)
	}
	e := got.wait(t, 1)[0]
	ids <- e.ID
	if e.Key != "order-7" || e.Data.(map[string]any)["order_id"] != 7.0 || len(e.ID) != 36 || time.Since(e.Time) > time.Minute {
		t.Errorf("event id %q key %q time %v data %v", e.ID, e.Key, e.Time, e.Data)
	}
	if e.Header("tenant") != "acme" || e.Header(eventstream.HeaderCloudEventsSource) != "" {
		t.Errorf("headers %v", e.Headers)
	}

	rec := pollOne(t, brokers, topic)
	keys := map[string]bool{}
	for _, h := range rec.Headers {
		keys[h.Key] = true
	}
	if want := map[string]bool{"tenant": true, "eventstream": true}; !maps.Equal(keys, want) {
		t.Errorf("record headers %v, want %v", keys, want)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Value, &body); err != nil || body["order_id"] != 7.0 {
		t.Errorf("value %s: %v", rec.Value, err)
	}
	for _, h := range rec.Headers {
		if h.Key == "eventstream" && (len(h.Value) != 14+36 || h.Value[0] != 1 || string(h.Value[14:]) != e.ID) {
			t.Errorf("compact header % x", h.Value)
		}
	}
}

// One topic holds records in both formats and foreign ones; a subscriber
// of either format reads each as what it is, in order.
func TestKafkaMixedFormats(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	ce := newKafkaBus(t, brokers, nil)
	compact := newKafkaBus(t, brokers, compactConfig)
	gotCE, gotCompact := newEvents(), newEvents()
	if _, err := ce.On(topic, gotCE.handler); err != nil {
		t.Fatal(err)
	}
	if _, err := compact.On(topic, gotCompact.handler); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	prod := rawClient(t, brokers)
	emit := func(b eventstream.EventBus, n int) {
		t.Helper()
		if err := b.Emit(ctx, topic, map[string]int{"n": n}, eventstream.WithHeaders(map[string]string{"n": itoa(int64(n))})); err != nil {
			t.Fatal(err)
		}
	}
	emit(ce, 0)
	emit(compact, 1)
	if err := prod.ProduceSync(ctx,
		&kgo.Record{Topic: topic, Value: []byte("plain text")},
		&kgo.Record{Topic: topic, Value: []byte(`{"n":3}`), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("their-3")},
			{Key: "ce_source", Value: []byte("/elsewhere")}, {Key: "ce_type", Value: []byte("com.example")},
		}},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	emit(compact, 4)
	emit(ce, 5)
	for name, got := range map[string]*events{"cloudevents": gotCE, "compact": gotCompact} {
		evs := got.wait(t, 6)
		for _, i := range []int{0, 1, 4, 5} {
			e := evs[i]
			if e.Data.(map[string]any)["n"] != float64(i) || e.Header("n") != itoa(int64(i)) || len(e.ID) != 36 {
				t.Errorf("%s: event %d: id %q data %v headers %v", name, i, e.ID, e.Data, e.Headers)
			}
		}
		if src := evs[0].Header(eventstream.HeaderCloudEventsSource); !strings.HasPrefix(src, "/eventstream/") {
			t.Errorf("%s: CloudEvents record without ce_source: %v", name, evs[0].Headers)
		}
		if e := evs[2]; e.Data != nil || string(e.Raw) != "plain text" || e.ID != topic+"-0-2" {
			t.Errorf("%s: foreign text: id %q data %v raw %q", name, e.ID, e.Data, e.Raw)
		}
		if e := evs[3]; e.ID != "their-3" || e.Header("ce_type") != "com.example" || e.Data.(map[string]any)["n"] != 3.0 {
			t.Errorf("%s: foreign CloudEvent: id %q headers %v data %v", name, e.ID, e.Headers, e.Data)
		}
	}
	// The two buses' consumers saw the same ids.
	a, c := gotCE.wait(t, 6), gotCompact.wait(t, 6)
	for i := range a {
		if a[i].ID != c[i].ID || !a[i].Time.Equal(c[i].Time) {
			t.Errorf("event %d: %q %v and %q %v", i, a[i].ID, a[i].Time, c[i].ID, c[i].Time)
		}
	}
}

// With DecodeDataNever the handler reads the payload with Unmarshal, Data
// is nil, and a value that is not JSON is still dead-lettered under
// NonJSONDeadLetter.
func TestKafkaDecodeDataNever(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	b := newKafkaBus(t, brokers, func(c *eventstream.Config) {
		c.Kafka.DecodeData = eventstream.DecodeDataNever
		c.Kafka.NonJSON = eventstream.NonJSONDeadLetter
	})
	got, dlq := newEvents(), newEvents()
	if _, err := b.On(topic, got.handler); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(topic+".dlq", dlq.handler); err != nil {
		t.Fatal(err)
	}
	prod := rawClient(t, brokers)
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("{not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	e := got.wait(t, 1)[0]
	var v struct{ N int }
	if err := e.Unmarshal(&v); err != nil || v.N != 1 || e.Data != nil {
		t.Errorf("data %v, Unmarshal %v: %v", e.Data, v, err)
	}
	if d := dlq.wait(t, 1)[0]; string(d.Raw) != "{not json" || !strings.Contains(d.Header(eventstream.HeaderDeadLetterReason), "is not JSON") {
		t.Errorf("dead letter raw %q headers %v", d.Raw, d.Headers)
	}
}
