package kafka

import (
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"strings"
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

// Data JSON cannot encode is an EncodeError naming the type.
func TestEncodeUnencodable(t *testing.T) {
	_, err := encode(event.New("t", map[string]any{"f": func() {}}), "/s")
	var ee *EncodeError
	if !errors.As(err, &ee) || ee.Type != "map[string]interface {}" {
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

// appendTime writes what time.Format writes for RFC 3339 with nanoseconds,
// in UTC, across the years RFC 3339 covers and beyond them.
func TestAppendTimeMatchesFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(tm time.Time) {
		t.Helper()
		want := tm.UTC().Format(time.RFC3339Nano)
		if got := string(appendTime(nil, tm)); got != want {
			t.Fatalf("%v: %q, want %q", tm, got, want)
		}
	}
	check(time.Unix(0, 0))
	check(time.Unix(-1, 0))
	check(time.Unix(-1, 999999999))
	check(time.Date(2024, 2, 29, 23, 59, 59, 100, time.FixedZone("x", 5*3600)))
	check(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))
	check(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC))
	check(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	check(time.Date(-1, 12, 31, 0, 0, 0, 10, time.UTC))
	check(time.Now())
	for range 100000 {
		sec := r.Int64N(2*400*365*86400) - 300*365*86400 // 1670 to 2470
		ns := r.Int64N(1e9)
		switch r.IntN(3) {
		case 0:
			ns = 0
		case 1:
			ns -= ns % 1000
		}
		check(time.Unix(sec, ns))
	}
}

// A compact record carries the event's headers and one header of its own;
// it decodes to the same event, time to the nanosecond.
func TestCompactRoundTrip(t *testing.T) {
	for _, id := range []string{"", "order-7", "0198A1C8-B0B8-7402-ABFA-0123456789AB", strings.Repeat("i", 300)} {
		e := event.New("orders", map[string]any{"id": 7.0, "note": "<b>"})
		if id != "" {
			e.ID = id
		}
		e.Key = "order-7"
		e.Headers = map[string]string{"tenant": "acme", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			HeaderCloudEventsID: "ignored", HeaderContentType: "text/plain"}
		r, err := encodeAs(e, Config{Source: "/orders", Format: FormatCompact})
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, h := range r.Headers {
			keys[h.Key] = true
		}
		if want := map[string]bool{"tenant": true, "traceparent": true, HeaderCompact: true}; !maps.Equal(keys, want) {
			t.Errorf("id %q: header keys %v, want %v", id, keys, want)
		}
		if v, _ := json.Marshal(e.Data); string(r.Value) != string(v) {
			t.Errorf("value %s, want %s", r.Value, v)
		}
		r.Partition, r.Offset = 2, 41
		got, err := decode(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != e.ID || !got.Time.Equal(e.Time) || got.Time.Location() != time.UTC || got.Key != e.Key {
			t.Errorf("decoded id %q time %v key %q; want %q %v %q", got.ID, got.Time, got.Key, e.ID, e.Time, e.Key)
		}
		want := map[string]string{"tenant": "acme", "traceparent": e.Headers["traceparent"]}
		if !maps.Equal(got.Headers, want) {
			t.Errorf("headers %v, want %v", got.Headers, want)
		}
		if d := got.Data.(map[string]any); d["id"] != 7.0 || d["note"] != "<b>" {
			t.Errorf("data %v", got.Data)
		}
	}
	// The header of an event with a UUID: 14 bytes and the id.
	e := event.New("orders", 1)
	r, err := encodeAs(e, Config{Format: FormatCompact})
	if err != nil {
		t.Fatal(err)
	}
	if v := r.Headers[0].Value; len(v) != compactFixed+36 || v[0] != 1 || v[1] != 0 || string(v[compactFixed:]) != e.ID {
		t.Errorf("compact header: % x", v)
	}
}

// A header named like the compact one that does not read as such is an
// ordinary header; a valid one wins over ce_id and ce_time whatever the
// order.
func TestCompactHeaderForeign(t *testing.T) {
	r := &kgo.Record{Topic: "t", Offset: 3, Value: []byte(`1`), Headers: []kgo.RecordHeader{
		{Key: HeaderCompact, Value: []byte("v2 of something else")},
	}}
	e, err := decode(r)
	if err != nil || e.ID != "t-0-3" || e.Header(HeaderCompact) != "v2 of something else" {
		t.Fatalf("id %q headers %v: %v", e.ID, e.Headers, err)
	}
	tm := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	r.Headers = []kgo.RecordHeader{
		{Key: HeaderCloudEventsID, Value: []byte("ce-id")},
		{Key: HeaderCloudEventsTime, Value: []byte("2020-01-01T00:00:00Z")},
		{Key: HeaderCompact, Value: appendCompact(nil, "compact-id", tm)},
	}
	e, err = decode(r)
	if err != nil || e.ID != "compact-id" || !e.Time.Equal(tm) || len(e.Headers) != 0 {
		t.Fatalf("id %q time %v headers %v: %v", e.ID, e.Time, e.Headers, err)
	}
	// ce_time that is not a time stays a header.
	r.Headers = []kgo.RecordHeader{{Key: HeaderCloudEventsTime, Value: []byte("yesterday")}}
	r.Timestamp = tm
	if e, _ = decode(r); !e.Time.Equal(tm) || e.Header(HeaderCloudEventsTime) != "yesterday" {
		t.Fatalf("time %v headers %v", e.Time, e.Headers)
	}
}

// Without Data decoding, the value stays in Raw; with CheckJSON one that
// is not JSON is still reported, and a content-type that is not JSON
// always is.
func TestDecodeSkipData(t *testing.T) {
	for _, check := range []bool{false, true} {
		c := newCodec(Config{SkipData: true, CheckJSON: check})
		e, err := c.decode(&kgo.Record{Topic: "t", Value: []byte(`{"a":1}`)})
		if err != nil || e.Data != nil || string(e.Raw) != `{"a":1}` {
			t.Fatalf("check %v: data %v raw %q: %v", check, e.Data, e.Raw, err)
		}
		var v struct{ A int }
		if err := e.Unmarshal(&v); err != nil || v.A != 1 {
			t.Fatalf("Unmarshal: %v %v", v, err)
		}
		_, err = c.decode(&kgo.Record{Topic: "t", Value: []byte(`{"a":`)})
		var de *DecodeError
		if check != errors.As(err, &de) {
			t.Errorf("check %v: truncated JSON: %v", check, err)
		}
		_, err = c.decode(&kgo.Record{Topic: "t", Value: []byte(`{}`),
			Headers: []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte("text/plain")}}})
		if !errors.As(err, &de) {
			t.Errorf("check %v: text/plain: %v", check, err)
		}
	}
}

// A pooled record is used again once reset: nothing of the earlier event
// remains, and what the later one holds is its own.
func TestOutRecordReuse(t *testing.T) {
	c := newCodec(Config{Source: "/s"})
	o := newOutRecord()
	first := event.New("a", map[string]string{"big": strings.Repeat("x", 1000)})
	first.Key, first.Headers = "k1", map[string]string{"h": "1"}
	if err := c.encode(o, first); err != nil {
		t.Fatal(err)
	}
	o.reset()
	second := event.New("b", 2)
	if err := c.encode(o, second); err != nil {
		t.Fatal(err)
	}
	got, err := decode(&o.rec)
	if err != nil || got.ID != second.ID || got.Topic != "b" || got.Key != "" || got.Data != 2.0 ||
		!maps.Equal(got.Headers, map[string]string{HeaderCloudEventsSource: "/s"}) {
		t.Fatalf("second: %+v: %v", got, err)
	}
	if err := c.encode(o, event.New("c", func() {})); err == nil {
		t.Fatal("encoded a func")
	}
	// A failed encode leaves the record usable.
	o.reset()
	if err := c.encode(o, event.New("d", "ok")); err != nil || string(o.rec.Value) != `"ok"` {
		t.Fatalf("after a failure: %q: %v", o.rec.Value, err)
	}
	// A borrowed Raw is dropped at reset.
	dl := event.New("e", nil)
	dl.Raw = []byte("raw bytes")
	if err := c.encode(o, dl); err != nil || string(o.rec.Value) != "raw bytes" {
		t.Fatalf("raw: %q: %v", o.rec.Value, err)
	}
	o.reset()
	if o.rec.Value != nil {
		t.Fatal("reset kept the event's Raw")
	}
}

// parseTime reads what time.Parse reads, and refuses what it refuses.
func TestParseTimeMatchesParse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	check := func(s string) {
		t.Helper()
		want, werr := time.Parse(time.RFC3339Nano, s)
		got, ok := parseTime([]byte(s))
		if ok != (werr == nil) || ok && !got.Equal(want) {
			t.Fatalf("%q: %v %v, time.Parse %v %v", s, got, ok, want, werr)
		}
	}
	for _, s := range []string{"2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-01-01T24:00:00Z",
		"2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z", "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-01-00T00:00:00Z",
		"2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.1234567891Z", "2024-01-01T00:00:00.5Z", "0000-01-01T00:00:00Z",
		"1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2024-01-01T00:00:00+02:00", "2024-1-01T00:00:00Z", "2024-01-01T0a:00:00Z",
		"2024-01-01T00:00:00.12a4Z", "2024-01-01T00:00:00/000Z", "yesterday", "2024-01-01 00:00:00Z"} {
		check(s)
	}
	for range 100000 {
		tm := time.Unix(r.Int64N(2*400*365*86400)-300*365*86400, r.Int64N(1e9))
		check(string(appendTime(nil, tm)))
	}
}
