package kafka

import (
	"encoding/json"
	"fmt"
	"mime"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/event"
)

// CloudEvents Kafka protocol binding, binary content mode: attributes are
// record headers prefixed "ce_", the data is the record value, and its media
// type is the content-type header.
const (
	HeaderCloudEventsSpecVersion = "ce_specversion"
	HeaderCloudEventsID          = "ce_id"
	HeaderCloudEventsSource      = "ce_source"
	HeaderCloudEventsType        = "ce_type"
	HeaderCloudEventsTime        = "ce_time"
	HeaderContentType            = "content-type"

	cloudEventsSpecVersion = "1.0"
	contentTypeJSON        = "application/json"
)

// DecodeError says why a record's value could not be read as JSON.
type DecodeError struct {
	Topic       string
	Partition   int32
	Offset      int64
	ContentType string // the record's content-type header, if any
	Err         error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("eventstream: record %s/%d@%d is not JSON: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// encodeError is what encode returns for data that JSON cannot encode.
type encodeError struct {
	typ string
	err error
}

func (e *encodeError) Error() string {
	return "data of type " + e.typ + " cannot be encoded as JSON: " + e.err.Error()
}

func (e *encodeError) Unwrap() error { return e.err }

// encode turns an event into its record: the JSON of Data as the value (or
// Raw as it is, for an event read from Kafka and sent on, such as a dead
// letter), the key, and the headers with the CloudEvents attributes, whose
// ce_source is source.
func encode(e *event.Event, source string) (*kgo.Record, error) {
	value := e.Raw
	if value == nil {
		var err error
		if value, err = json.Marshal(e.Data); err != nil {
			return nil, &encodeError{typ: typeName(e.Data), err: err}
		}
	}
	r := &kgo.Record{Topic: e.Topic, Value: value, Timestamp: e.Time}
	if e.Key != "" {
		r.Key = []byte(e.Key)
	}
	// All header values share one buffer: one allocation, not one each.
	size := len(cloudEventsSpecVersion) + len(e.ID) + len(time.RFC3339Nano) + len(source) + len(e.Topic) + len(contentTypeJSON)
	for _, v := range e.Headers {
		size += len(v)
	}
	buf := make([]byte, 0, size)
	add := func(v string) []byte {
		start := len(buf)
		buf = append(buf, v...)
		return buf[start:len(buf):len(buf)]
	}
	hs := make([]kgo.RecordHeader, 0, len(e.Headers)+6)
	var hasSource, hasType, hasContentType bool
	for k, v := range e.Headers {
		switch k {
		case HeaderCloudEventsSpecVersion, HeaderCloudEventsID, HeaderCloudEventsTime:
			continue // always this event's own
		case HeaderCloudEventsSource:
			hasSource = true
		case HeaderCloudEventsType:
			hasType = true
		case HeaderContentType:
			if e.Raw == nil {
				continue // the value is JSON we encoded
			}
			hasContentType = true
		}
		hs = append(hs, kgo.RecordHeader{Key: k, Value: add(v)})
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderCloudEventsSpecVersion, Value: add(cloudEventsSpecVersion)},
		kgo.RecordHeader{Key: HeaderCloudEventsID, Value: add(e.ID)})
	tstart := len(buf)
	buf = e.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
	hs = append(hs, kgo.RecordHeader{Key: HeaderCloudEventsTime, Value: buf[tstart:len(buf):len(buf)]})
	if !hasSource {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCloudEventsSource, Value: add(source)})
	}
	if !hasType {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCloudEventsType, Value: add(e.Topic)})
	}
	if !hasContentType {
		hs = append(hs, kgo.RecordHeader{Key: HeaderContentType, Value: add(contentTypeJSON)})
	}
	r.Headers = hs
	return r, nil
}

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	return reflect.TypeOf(v).String()
}

// decode turns a record into an event. Every header becomes an event header.
// The id is ce_id, else "<topic>-<partition>-<offset>" (stable across
// re-deliveries, so handlers can deduplicate on it); the time is ce_time,
// else the record's timestamp. Data is the decoded JSON value; a value that
// is not JSON (by its content-type, or failing to parse) leaves Data nil,
// keeps the bytes in Raw, and returns a *DecodeError beside the event. An
// empty value (a tombstone) is Data nil without an error.
//
// The strings of the event (ID, Key, header values) are copies: a handler,
// a span or the history may keep them long after the record, and a view
// into the record would keep its whole fetch buffer alive. Raw is the
// record's own value slice (copying every payload would double the cost of
// a large record); it pins the fetch buffer only as long as someone keeps
// Raw itself.
func decode(r *kgo.Record) (*event.Event, error) {
	// The event and its location in one allocation.
	er := &struct {
		e event.Event
		r event.Record
	}{r: event.Record{Partition: r.Partition, Offset: r.Offset}}
	e := &er.e
	e.Topic, e.Raw, e.Record = r.Topic, r.Value, &er.r
	if len(r.Headers) > 0 {
		decodeHeaders(e, r)
	} else if len(r.Key) > 0 {
		e.Key = string(r.Key)
	}
	if e.ID == "" {
		e.ID = r.Topic + "-" + strconv.FormatInt(int64(r.Partition), 10) + "-" + strconv.FormatInt(r.Offset, 10)
	}
	if e.Time.IsZero() {
		e.Time = r.Timestamp
	}
	if len(r.Value) == 0 {
		return e, nil
	}
	ct := e.Headers[HeaderContentType]
	if ct != "" && !isJSONMediaType(ct) {
		return e, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, ContentType: ct,
			Err: fmt.Errorf("content-type %q is not JSON", ct)}
	}
	data, err := decodeJSON(r.Value)
	if err != nil {
		return e, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, ContentType: ct, Err: err}
	}
	e.Data = data
	return e, nil
}

// decodeHeaders fills e.Key and e.Headers from the record, and e.ID and
// e.Time from ce_id and ce_time. The CloudEvents attributes the event holds
// in its own fields, or that have the value the bus would write anyway,
// are not repeated in Headers: ce_id, ce_time, ce_specversion "1.0",
// content-type "application/json" and ce_type equal to the topic. Every
// other header, ce_source included, is there.
//
// The key and the header values kept are copied into one buffer of the
// event's own (one allocation for all of them); the id gets its own copy,
// as it outlives the event in spans and the history.
func decodeHeaders(e *event.Event, r *kgo.Record) {
	n, size := 0, len(r.Key)
	var drop uint64 // bit i: header i is not kept (only the first 64 can be dropped)
	for i, h := range r.Headers {
		keep := true
		switch h.Key {
		case HeaderCloudEventsID:
			e.ID, keep = string(h.Value), false
		case HeaderCloudEventsTime:
			if tm, ok := parseTime(h.Value); ok {
				e.Time, keep = tm, false
			}
		case HeaderCloudEventsSpecVersion:
			keep = string(h.Value) != cloudEventsSpecVersion
		case HeaderContentType:
			keep = string(h.Value) != contentTypeJSON
		case HeaderCloudEventsType:
			keep = string(h.Value) != r.Topic
		}
		if !keep && i < 64 {
			drop |= 1 << i
			continue
		}
		n++
		size += len(h.Value)
	}
	buf := make([]byte, 0, size)
	view := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		start := len(buf)
		buf = append(buf, b...)
		// buf never grows beyond its capacity, so every view stays valid.
		return unsafe.String(&buf[start], len(b))
	}
	e.Key = view(r.Key)
	if n == 0 {
		return
	}
	e.Headers = make(map[string]string, n)
	for i, h := range r.Headers {
		if i >= 64 || drop&(1<<i) == 0 {
			e.Headers[h.Key] = view(h.Value)
		}
	}
}

// parseTime reads an RFC 3339 time. The UTC form the bus writes
// (2006-01-02T15:04:05.999999999Z) is read directly; others go through
// time.Parse.
func parseTime(s []byte) (time.Time, bool) {
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	if len(s) >= 20 && s[len(s)-1] == 'Z' && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' {
		y, ok1 := num(s[0:4])
		mo, ok2 := num(s[5:7])
		d, ok3 := num(s[8:10])
		h, ok4 := num(s[11:13])
		mi, ok5 := num(s[14:16])
		sec, ok6 := num(s[17:19])
		ns, frac := 0, s[19:len(s)-1]
		okf := true
		if len(frac) > 0 {
			if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
				okf = false
			} else if ns, okf = num(frac[1:]); okf {
				for i := len(frac) - 1; i < 9; i++ {
					ns *= 10
				}
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && okf && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && sec < 60 {
			return time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC), true
		}
	}
	// A copy: a parse error would keep the string, and time.Parse may keep
	// parts of it in the zone name.
	t, err := time.Parse(time.RFC3339Nano, string(s))
	return t, err == nil
}

// isJSONMediaType accepts application/json and the structured-syntax
// suffix +json (application/cloudevents+json, application/vnd.x+json).
func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == contentTypeJSON || strings.HasSuffix(mt, "+json") || mt == "text/json"
}
