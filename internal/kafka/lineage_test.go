package kafka

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/event"
)

// The lineage ids survive encode and decode in both formats, travel as
// ce_causationid / ce_correlationid, and are not repeated in Headers.
func TestLineageRoundTrip(t *testing.T) {
	for _, format := range []Format{FormatCloudEvents, FormatCompact} {
		root := event.New("orders", 1)
		root.CorrelationID = root.ID
		child := event.New("payments", 2)
		child.CausationID, child.CorrelationID = root.ID, root.ID
		named := event.New("orders", 3)
		named.CorrelationID = "req-42"
		for _, e := range []*event.Event{root, child, named} {
			e.Headers = map[string]string{"tenant": "acme",
				// A user header by these names does not override the fields.
				HeaderCloudEventsCausationID: "forged", HeaderCloudEventsCorrelationID: "forged"}
			r, err := encodeAs(e, Config{Format: format, Source: "/s"})
			if err != nil {
				t.Fatal(err)
			}
			hs := headerValues(r)
			wantCorrel := e.CorrelationID
			if format == FormatCompact && e.CorrelationID == e.ID {
				wantCorrel = "" // absent: the event starts its chain
			}
			if hs[HeaderCloudEventsCausationID] != e.CausationID || hs[HeaderCloudEventsCorrelationID] != wantCorrel {
				t.Errorf("format %d, %s: headers causation %q correlation %q; want %q %q", format, e.Topic,
					hs[HeaderCloudEventsCausationID], hs[HeaderCloudEventsCorrelationID], e.CausationID, wantCorrel)
			}
			got, err := decode(r)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != e.ID || got.CausationID != e.CausationID || got.CorrelationID != e.CorrelationID {
				t.Errorf("format %d: decoded id %q causation %q correlation %q; want %q %q %q", format,
					got.ID, got.CausationID, got.CorrelationID, e.ID, e.CausationID, e.CorrelationID)
			}
			if _, ok := got.Headers[HeaderCloudEventsCausationID]; ok {
				t.Errorf("format %d: ce_causationid repeated in Headers", format)
			}
			if _, ok := got.Headers[HeaderCloudEventsCorrelationID]; ok {
				t.Errorf("format %d: ce_correlationid repeated in Headers", format)
			}
			if got.CorrelationID == got.ID && unsafe.StringData(got.CorrelationID) != unsafe.StringData(got.ID) {
				t.Errorf("format %d: a correlation id equal to the id is a string of its own", format)
			}
		}
	}
}

// A foreign producer's lineage headers are read; a record without them
// starts its chain; a record whose other headers are large gives the ids
// copies of their own instead of views into a large buffer.
func TestLineageForeign(t *testing.T) {
	r := &kgo.Record{Topic: "t", Value: []byte(`{}`), Headers: []kgo.RecordHeader{
		{Key: "ce_id", Value: []byte("theirs-2")},
		{Key: "ce_causationid", Value: []byte("theirs-1")},
		{Key: "ce_correlationid", Value: []byte("http-req-9")},
	}}
	e, err := decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "theirs-2" || e.CausationID != "theirs-1" || e.CorrelationID != "http-req-9" || len(e.Headers) != 0 {
		t.Errorf("foreign: id %q causation %q correlation %q headers %v", e.ID, e.CausationID, e.CorrelationID, e.Headers)
	}

	plain, err := decode(&kgo.Record{Topic: "t", Partition: 1, Offset: 5, Value: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if plain.CausationID != "" || plain.CorrelationID != plain.ID || plain.ID != "t-1-5" {
		t.Errorf("plain record: id %q causation %q correlation %q", plain.ID, plain.CausationID, plain.CorrelationID)
	}

	big := strings.Repeat("x", 4096)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "blob", Value: []byte(big)})
	e, err = decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if e.CausationID != "theirs-1" || e.CorrelationID != "http-req-9" || e.Headers["blob"] != big {
		t.Fatalf("with a large header: causation %q correlation %q", e.CausationID, e.CorrelationID)
	}
	blob := uintptr(unsafe.Pointer(unsafe.StringData(e.Headers["blob"])))
	for name, id := range map[string]string{"id": e.ID, "causation": e.CausationID, "correlation": e.CorrelationID} {
		p := uintptr(unsafe.Pointer(unsafe.StringData(id)))
		if p >= blob-64 && p < blob+uintptr(len(big))+64 {
			t.Errorf("the %s id is a view into the large headers' buffer", name)
		}
	}
}

func headerValues(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}
