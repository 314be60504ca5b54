package kafka

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/event"
)

// encode and decode as a transport with the default configuration does.
func encode(e *event.Event, source string) (*kgo.Record, error) {
	return encodeAs(e, Config{Source: source})
}

func encodeAs(e *event.Event, cfg Config) (*kgo.Record, error) {
	o := newOutRecord()
	if err := newCodec(cfg).encode(o, e); err != nil {
		return nil, err
	}
	return &o.rec, nil
}

func decode(r *kgo.Record) (*event.Event, error) { return newCodec(Config{}).decode(r) }

// An event survives encode and decode: id, time, key, data and headers.
func TestRecordRoundTrip(t *testing.T) {
	e := event.New("orders", map[string]any{"id": 7.0, "tags": []any{"a"}})
	e.Key = "order-7"
	e.Headers = map[string]string{"tenant": "acme", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	r, err := encode(e, "/orders")
	if err != nil {
		t.Fatal(err)
	}
	r.Partition, r.Offset = 2, 41
	got, err := decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || !got.Time.Equal(e.Time.Truncate(0)) || got.Key != e.Key || got.Topic != "orders" {
		t.Errorf("decoded id %q time %v key %q topic %q; want %q %v %q", got.ID, got.Time, got.Key, got.Topic, e.ID, e.Time, e.Key)
	}
	if d := got.Data.(map[string]any); d["id"] != 7.0 || d["tags"].([]any)[0] != "a" {
		t.Errorf("data %v", got.Data)
	}
	want := maps.Clone(e.Headers)
	want[HeaderCloudEventsSource] = "/orders"
	if !maps.Equal(got.Headers, want) {
		t.Errorf("headers %v, want %v", got.Headers, want)
	}
	if got.Record == nil || got.Record.Partition != 2 || got.Record.Offset != 41 {
		t.Errorf("record %+v", got.Record)
	}
}

// Data JSON cannot encode is an encodeError naming the type.
func TestEncodeUnencodable(t *testing.T) {
	_, err := encode(event.New("t", map[string]any{"f": func() {}}), "/s")
	var ee *encodeError
	if !errors.As(err, &ee) || ee.typ != "map[string]interface {}" {
		t.Fatalf("encode: %v", err)
	}
}

// The strings of a decoded event are its own: a handler, a span or the
// history that keeps them must not keep the record's fetch buffer, and
// whatever happens to that buffer later must not change them.
func TestDecodeCopiesRecordMemory(t *testing.T) {
	for _, withHeaders := range []bool{true, false} {
		r := &kgo.Record{
			Topic: "orders", Partition: 1, Offset: 9, Timestamp: time.Unix(1700000000, 0),
			Key:   []byte("key-1"),
			Value: []byte(`{"n":"value"}`),
		}
		if withHeaders {
			r.Headers = []kgo.RecordHeader{
				{Key: HeaderCloudEventsID, Value: []byte("id-123")},
				{Key: HeaderCloudEventsSource, Value: []byte("/src")},
				{Key: "tenant", Value: []byte("acme")},
				{Key: HeaderCloudEventsTime, Value: []byte("2024-01-02T03:04:05.123Z")},
			}
		}
		e, err := decode(r)
		if err != nil {
			t.Fatal(err)
		}
		id, key, headers := e.ID, e.Key, maps.Clone(e.Headers)
		// The fetch buffer is reused or rewritten: every byte changes.
		scribble := func(b []byte) {
			for i := range b {
				b[i] = 'X'
			}
		}
		scribble(r.Key)
		scribble(r.Value)
		for _, h := range r.Headers {
			scribble(h.Value)
		}
		if e.ID != id || e.Key != key || !maps.Equal(e.Headers, headers) {
			t.Fatalf("headers %v: event strings changed with the record: id %q key %q headers %v (were %q %q %v)",
				withHeaders, e.ID, e.Key, e.Headers, id, key, headers)
		}
		if e.Data.(map[string]any)["n"] != "value" {
			t.Fatalf("data changed with the record: %v", e.Data)
		}
		wantID := "id-123"
		if !withHeaders {
			wantID = "orders-1-9"
		}
		if id != wantID || key != "key-1" {
			t.Fatalf("id %q key %q", id, key)
		}
	}
}

// A value that is not JSON is delivered with its bytes and a *DecodeError
// beside it; a tombstone is not an error.
func TestDecodeNonJSON(t *testing.T) {
	cases := []struct {
		name    string
		r       *kgo.Record
		wantErr bool
	}{
		{"text", &kgo.Record{Topic: "t", Value: []byte("hello")}, true},
		{"xml", &kgo.Record{Topic: "t", Value: []byte("<x/>"), Headers: []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte("application/xml")}}}, true},
		{"cloudevents json", &kgo.Record{Topic: "t", Value: []byte(`{"a":1}`), Headers: []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte("application/cloudevents+json")}}}, false},
		{"tombstone", &kgo.Record{Topic: "t"}, false},
	}
	for _, tc := range cases {
		e, err := decode(tc.r)
		var de *DecodeError
		if tc.wantErr != errors.As(err, &de) {
			t.Errorf("%s: error %v", tc.name, err)
		}
		if tc.wantErr && (e.Data != nil || string(e.Raw) != string(tc.r.Value)) {
			t.Errorf("%s: data %v raw %q", tc.name, e.Data, e.Raw)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	e := event.New("orders", map[string]any{"order_id": 12345, "user": "u-778"})
	e.Key = "order-12345"
	e.Headers = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	r, err := encode(e, "/bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(r); err != nil {
			b.Fatal(err)
		}
	}
}
