package kafka

import (
	"context"
	"encoding/binary"
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

	// The event's lineage, as CloudEvents extension attributes (lower-case
	// alphanumeric names; CloudEvents defines no attribute for them): the
	// id of the event whose handler emitted this one, and the id of the
	// first event of its chain. Both formats write them (the compact
	// header's layout is unchanged, so that older consumers still read
	// it); every consumer reads them, from any producer.
	HeaderCloudEventsCausationID   = "ce_causationid"
	HeaderCloudEventsCorrelationID = "ce_correlationid"

	cloudEventsSpecVersion = "1.0"
	contentTypeJSON        = "application/json"
)

// Format is the layout of the records the transport writes. Consumers read
// both, and foreign records, whatever the writer's Format: the layout is
// recognized per record.
type Format uint8

const (
	// FormatCloudEvents writes the CloudEvents binary-mode attributes as
	// six headers, so that CloudEvents consumers read the records.
	FormatCloudEvents Format = iota
	// FormatCompact writes one header, HeaderCompact, with the event's id
	// and its time in binary; ce_source, ce_type, ce_specversion and
	// content-type are left out (the value is JSON). Every header of the
	// event itself (trace context, user headers) is written as in
	// FormatCloudEvents. A consumer pays franz-go one header instead of
	// six.
	FormatCompact
)

// HeaderCompact is the header of FormatCompact. Its value, version 1:
//
//	byte 0       1 (the version)
//	byte 1       0 (flags, none defined)
//	bytes 2–9    the time's Unix seconds, big-endian signed
//	bytes 10–13  the time's nanoseconds within the second, big-endian
//	bytes 14–    the id, as it is
//
// The id is not packed (a UUID would fit in 16 bytes): parsing and
// formatting it cost more CPU on both sides than its 20 bytes cost on the
// wire. A header by this name that does not read as such is an ordinary
// header.
const HeaderCompact = "eventstream"

const (
	compactVersion = 1
	compactFixed   = 14
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

// EncodeError is what Publish returns for data that JSON cannot encode.
type EncodeError struct {
	Type string // the data's Go type
	Err  error  // encoding/json's error
}

func (e *EncodeError) Error() string {
	return "data of type " + e.Type + " cannot be encoded as JSON: " + e.Err.Error()
}

func (e *EncodeError) Unwrap() error { return e.Err }

// codec turns events into records and records into events.
type codec struct {
	format Format
	// decodeData fills Event.Data with the decoded value; without it,
	// Data stays nil and checkJSON says whether the value is still
	// checked (so that a value that is not JSON is reported).
	decodeData bool
	checkJSON  bool

	// Header values that never change, shared by every record: franz-go
	// only reads them.
	specVersion, source, contentType []byte
}

func newCodec(cfg Config) *codec {
	return &codec{
		format:      cfg.Format,
		decodeData:  !cfg.SkipData,
		checkJSON:   cfg.CheckJSON,
		specVersion: []byte(cloudEventsSpecVersion),
		source:      []byte(cfg.Source),
		contentType: []byte(contentTypeJSON),
	}
}

// outRecord is one record on its way to the broker, with what its promise
// needs. It is pooled: franz-go keeps no reference to a record once its
// promise returned, so the record, its headers and its bytes are reused
// for a later event.
//
// It is also the record's context. Publish must not hand franz-go the
// caller's cancellation (see Publish), and one promise function serves
// every record, which finds its outRecord through the context; an
// outRecord that is a context without cancellation over the caller's
// values does both without allocating.
type outRecord struct {
	rec     kgo.Record
	parent  context.Context // the caller's: values only
	done    func(error)     // asynchronous publish: the caller's callback
	acked   chan error      // synchronous publish: the outcome
	id      string          // the event's, for the log of a failure
	buf     []byte          // the value (unless it is Raw), key and header values
	headers []kgo.RecordHeader
	layout  *codec        // headers[:its fixed slots] hold that codec's keys
	enc     *json.Encoder // writes into buf
	// rawValue: the record's value is the event's Raw, not buf.
	rawValue bool
}

type outRecordKey struct{}

// Deadline, Done and Err hide the caller's cancellation from franz-go.
func (o *outRecord) Deadline() (time.Time, bool) { return time.Time{}, false }
func (o *outRecord) Done() <-chan struct{}       { return nil }
func (o *outRecord) Err() error                  { return nil }

// Value finds the outRecord itself (hooks may have wrapped the context),
// and the caller's values (trace context) for hooks and logs.
func (o *outRecord) Value(key any) any {
	if key == (outRecordKey{}) {
		return o
	}
	if o.parent == nil {
		return nil
	}
	return o.parent.Value(key)
}

// Write lets the JSON encoder append to buf.
func (o *outRecord) Write(p []byte) (int, error) {
	o.buf = append(o.buf, p...)
	return len(p), nil
}

// maxPooledBytes bounds the buffer a pooled record keeps: a rare large
// event must not pin its size in every pooled record.
const maxPooledBytes = 64 << 10

func newOutRecord() *outRecord {
	o := &outRecord{}
	o.enc = json.NewEncoder(o)
	return o
}

// reset drops what the record refers to, keeping its buffers and the
// fixed headers' keys (values in them point into buf or are constants).
func (o *outRecord) reset() {
	if o.layout != nil {
		fixed := o.layout.fixedSlots()
		clear(o.headers[fixed:])
		o.headers = o.headers[:fixed]
	}
	// The record itself is rewritten whole by the next encode; until then
	// it keeps nothing but the event's topic string, and Raw, dropped here.
	if o.rawValue {
		o.rec.Value, o.rawValue = nil, false
	}
	o.parent, o.done, o.id = nil, nil, ""
	if cap(o.buf) > maxPooledBytes {
		o.buf = nil
	}
	o.buf = o.buf[:0]
}

// span is where a header value lies in buf, until buf stops growing.
type span struct{ start, end int }

// encode fills o.rec from e: the JSON of Data as the value (or Raw as it
// is, for an event read from Kafka and sent on, such as a dead letter), the
// key, the format's headers and the event's. Everything the record holds
// is appended to o.buf, whose slices are taken once it is complete.
//
// The format's headers come first, in fixed slots whose keys a pooled
// record keeps from one event to the next; a header of the event that is
// one of them (its own ce_source, say) takes its slot.
func (c *codec) encode(o *outRecord, e *event.Event) error {
	o.buf = o.buf[:0]
	value := span{-1, -1}
	if e.Raw == nil {
		if err := o.enc.Encode(e.Data); err != nil {
			o.buf = o.buf[:0]
			return &EncodeError{Type: typeName(e.Data), Err: err}
		}
		value = span{0, len(o.buf) - 1} // without Encode's newline
	}
	key := o.add(e.Key)

	nfixed := c.fixedSlots()
	if o.layout != c {
		o.headers = c.fixedHeaders(o.headers[:0])
		o.layout = c
	}
	hs := o.headers[:nfixed]
	// Where each header's value lies in buf; {-1, -1} keeps the slot's
	// constant value.
	var spans [16]span
	vals := spans[:nfixed]
	for i := range vals {
		vals[i] = span{-1, -1}
	}
	if c.format == FormatCompact {
		start := len(o.buf)
		o.buf = appendCompact(o.buf, e.ID, e.Time)
		vals[0] = span{start, len(o.buf)}
	} else {
		vals[ceSlotID] = o.add(e.ID)
		start := len(o.buf)
		o.buf = appendTime(o.buf, e.Time)
		vals[ceSlotTime] = span{start, len(o.buf)}
		vals[ceSlotType] = o.add(e.Topic)
	}
	// Lineage: the causation id when there is a cause; the correlation id
	// always in CloudEvents (so that its consumers need no rule), in the
	// compact format only when it is not the id (absent means "this event
	// starts its chain").
	if e.CausationID != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCloudEventsCausationID})
		vals = append(vals, o.add(e.CausationID))
	}
	if e.CorrelationID != "" && (c.format == FormatCloudEvents || e.CorrelationID != e.ID) {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCloudEventsCorrelationID})
		vals = append(vals, o.add(e.CorrelationID))
	}
	for k, v := range e.Headers {
		slot := -1
		switch k {
		case HeaderCloudEventsSpecVersion, HeaderCloudEventsID, HeaderCloudEventsTime, HeaderCompact,
			HeaderCloudEventsCausationID, HeaderCloudEventsCorrelationID:
			continue // always this event's own
		case HeaderCloudEventsSource:
			slot = ceSlotSource
		case HeaderCloudEventsType:
			slot = ceSlotType
		case HeaderContentType:
			if e.Raw == nil {
				continue // the value is JSON we encoded
			}
			slot = ceSlotContentType
		}
		if slot >= 0 && c.format == FormatCloudEvents {
			vals[slot] = o.add(v)
			continue
		}
		hs = append(hs, kgo.RecordHeader{Key: k})
		vals = append(vals, o.add(v))
	}

	// buf is complete: take its slices (capacity capped, so that nothing
	// appended later could reach the next one).
	b := o.buf
	at := func(s span) []byte { return b[s.start:s.end:s.end] }
	rv, rk := e.Raw, []byte(nil)
	if o.rawValue = value.start < 0; !o.rawValue {
		rv = at(value)
	}
	if key.end > key.start {
		rk = at(key)
	}
	o.rec = kgo.Record{Topic: e.Topic, Timestamp: e.Time, Key: rk, Value: rv, Headers: hs, Context: o}
	if c.format == FormatCloudEvents {
		hs[ceSlotSource].Value, hs[ceSlotContentType].Value = c.source, c.contentType
	}
	for i, s := range vals {
		if s.start >= 0 {
			hs[i].Value = at(s)
		}
	}
	o.headers = hs
	return nil
}

func (c *codec) fixedSlots() int {
	if c.format == FormatCompact {
		return 1
	}
	return ceSlots
}

// The slots of the CloudEvents headers.
const (
	ceSlotSpecVersion = iota
	ceSlotID
	ceSlotTime
	ceSlotSource
	ceSlotType
	ceSlotContentType
	ceSlots
)

// fixedHeaders appends the format's headers with their keys and constant
// values.
func (c *codec) fixedHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	if c.format == FormatCompact {
		return append(hs, kgo.RecordHeader{Key: HeaderCompact})
	}
	return append(hs,
		kgo.RecordHeader{Key: HeaderCloudEventsSpecVersion, Value: c.specVersion},
		kgo.RecordHeader{Key: HeaderCloudEventsID},
		kgo.RecordHeader{Key: HeaderCloudEventsTime},
		kgo.RecordHeader{Key: HeaderCloudEventsSource, Value: c.source},
		kgo.RecordHeader{Key: HeaderCloudEventsType},
		kgo.RecordHeader{Key: HeaderContentType, Value: c.contentType})
}

// add appends s to buf and returns where it lies.
func (o *outRecord) add(s string) span {
	start := len(o.buf)
	o.buf = append(o.buf, s...)
	return span{start, len(o.buf)}
}

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	return reflect.TypeOf(v).String()
}

// appendCompact appends the value of HeaderCompact for id and t.
func appendCompact(b []byte, id string, t time.Time) []byte {
	b = append(b, compactVersion, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
	return append(b, id...)
}

// readCompact reads a HeaderCompact value: the id's bytes and the time.
func readCompact(v []byte) (id []byte, t time.Time, ok bool) {
	if len(v) < compactFixed || v[0] != compactVersion || v[1] != 0 {
		return nil, time.Time{}, false
	}
	sec := int64(binary.BigEndian.Uint64(v[2:10]))
	nsec := binary.BigEndian.Uint32(v[10:14])
	if nsec >= 1e9 {
		return nil, time.Time{}, false
	}
	return v[compactFixed:], time.Unix(sec, int64(nsec)).UTC(), true
}

// appendTime appends t in UTC as RFC 3339 with the nanoseconds that are
// not zero, as t.UTC().AppendFormat(b, time.RFC3339Nano) does, from the
// Unix time directly: Format's layout interpretation and calendar calls
// were a fifth of encoding a record.
func appendTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	days := sec / 86400
	if sec%86400 < 0 {
		days--
	}
	rem := sec - days*86400
	// Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
	z := days + 719468
	era := z / 146097
	if z%146097 < 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	if y < 0 || y > 9999 {
		return t.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	var s [30]byte
	put2 := func(at int, v int64) { copy(s[at:at+2], twoDigits[2*v:]) }
	put2(0, y/100)
	put2(2, y%100)
	s[4] = '-'
	put2(5, m)
	s[7] = '-'
	put2(8, d)
	s[10] = 'T'
	put2(11, rem/3600)
	s[13] = ':'
	put2(14, rem/60%60)
	s[16] = ':'
	put2(17, rem%60)
	n := 19
	if ns := int64(t.Nanosecond()); ns != 0 {
		s[19] = '.'
		put2(20, ns/1e7)
		put2(22, ns/1e5%100)
		put2(24, ns/1e3%100)
		put2(26, ns/10%100)
		s[28] = byte('0' + ns%10)
		n = 29
		for s[n-1] == '0' {
			n--
		}
	}
	s[n] = 'Z'
	return append(b, s[:n+1]...)
}

// twoDigits holds "00" to "99", two bytes each.
const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// decode turns a record into an event. Every header becomes an event header.
// The id and time are those of HeaderCompact, else ce_id and ce_time; else
// the id is "<topic>-<partition>-<offset>" (stable across re-deliveries, so
// handlers can deduplicate on it) and the time the record's timestamp.
// Data is the decoded JSON value (unless the codec skips it); a value that
// is not JSON (by its content-type, or failing to parse or the check) leaves
// Data nil, keeps the bytes in Raw, and returns a *DecodeError beside the
// event. An empty value (a tombstone) is Data nil without an error.
//
// The strings of the event (ID, Key, header values) are copies: a handler,
// a span or the history may keep them long after the record, and a view
// into the record would keep its whole fetch buffer alive. Raw is the
// record's own value slice (copying every payload would double the cost of
// a large record); it pins the fetch buffer only as long as someone keeps
// Raw itself.
func (c *codec) decode(r *kgo.Record) (*event.Event, error) {
	// The event and its location in one allocation.
	er := &struct {
		e event.Event
		r event.Record
	}{r: event.Record{Partition: r.Partition, Offset: r.Offset}}
	e := &er.e
	e.Topic, e.Raw, e.Record = r.Topic, r.Value, &er.r
	ct := ""
	if len(r.Headers) > 0 {
		ct = decodeHeaders(e, r)
	} else if len(r.Key) > 0 {
		e.Key = string(r.Key)
	}
	if e.ID == "" {
		e.ID = r.Topic + "-" + strconv.FormatInt(int64(r.Partition), 10) + "-" + strconv.FormatInt(r.Offset, 10)
	}
	if e.CorrelationID == "" {
		e.CorrelationID = e.ID // no header: the event starts its chain
	}
	if e.Time.IsZero() {
		e.Time = r.Timestamp
	}
	if len(r.Value) == 0 {
		return e, nil
	}
	if ct != "" && !isJSONMediaType(ct) {
		return e, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, ContentType: ct,
			Err: fmt.Errorf("content-type %q is not JSON", ct)}
	}
	switch {
	case c.decodeData:
		data, err := decodeJSON(r.Value)
		if err != nil {
			return e, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, ContentType: ct, Err: err}
		}
		e.Data = data
	case c.checkJSON:
		if !json.Valid(r.Value) {
			var v any
			err := json.Unmarshal(r.Value, &v) // the reason, as decoding would give it
			return e, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, ContentType: ct, Err: err}
		}
	}
	return e, nil
}

// decodeHeaders fills e.ID, e.Time, e.Key, e.CausationID, e.CorrelationID
// and e.Headers from the record and returns its content-type. The
// attributes the event holds in its own fields, or that have the value the
// bus would write anyway, are not repeated in Headers: HeaderCompact,
// ce_id, ce_time, ce_causationid, ce_correlationid, ce_specversion "1.0",
// content-type "application/json" and ce_type equal to the topic. Every
// other header, ce_source included, is there.
//
// The ids, the key and the header values kept are copied into one buffer
// of the event's own: one allocation for all of them. The ids outlive the
// event in spans and the history, and keep that buffer with them, which is
// why a buffer much larger than the ids gives them copies of their own.
func decodeHeaders(e *event.Event, r *kgo.Record) (contentType string) {
	const maxShared = 256 // bytes of key and header values an id may keep
	var (
		idBytes    []byte
		compactSet bool
		ceID       []byte
		ceTime     []byte
		causation  []byte
		correl     []byte
	)
	n, size := 0, len(r.Key)
	var drop uint64 // bit i: header i is not kept (only the first 64 can be dropped)
	for i, h := range r.Headers {
		keep := true
		switch h.Key {
		case HeaderCompact:
			if id, tm, ok := readCompact(h.Value); ok && !compactSet {
				idBytes, e.Time, compactSet, keep = id, tm, true, false
			}
		case HeaderCloudEventsID:
			ceID, keep = h.Value, false
		case HeaderCloudEventsTime:
			ceTime = h.Value
			keep = false
		case HeaderCloudEventsCausationID:
			causation, keep = h.Value, false
		case HeaderCloudEventsCorrelationID:
			correl, keep = h.Value, false
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
	if !compactSet {
		if ceTime != nil {
			if tm, ok := parseTime(ceTime); ok {
				e.Time = tm
			} else if i := indexHeader(r.Headers, HeaderCloudEventsTime); i >= 0 && i < 64 {
				// Not a time: kept as a header, as any other.
				drop &^= 1 << i
				n++
				size += len(ceTime)
			}
		}
		idBytes = ceID
	}
	// A correlation id equal to the id is the id's string: one copy less.
	sameCorrel := len(correl) > 0 && string(correl) == string(idBytes)
	if sameCorrel {
		correl = nil
	}
	idLen := len(idBytes) + len(causation) + len(correl)
	if size > maxShared && idLen > 0 {
		// Copies of their own.
		e.ID, e.CausationID, e.CorrelationID = string(idBytes), string(causation), string(correl)
		idLen = 0
	}
	buf := make([]byte, 0, idLen+size)
	view := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		start := len(buf)
		buf = append(buf, b...)
		// buf never grows beyond its capacity, so every view stays valid.
		return unsafe.String(&buf[start], len(b))
	}
	if idLen > 0 {
		e.ID = view(idBytes)
		e.CausationID = view(causation)
		e.CorrelationID = view(correl)
	}
	if sameCorrel {
		e.CorrelationID = e.ID
	}
	e.Key = view(r.Key)
	if n > 0 {
		e.Headers = make(map[string]string, n)
		for i, h := range r.Headers {
			if i >= 64 || drop&(1<<i) == 0 {
				v := view(h.Value)
				e.Headers[h.Key] = v
				if h.Key == HeaderContentType {
					contentType = v
				}
			}
		}
	}
	return contentType
}

func indexHeader(hs []kgo.RecordHeader, key string) int {
	for i, h := range hs {
		if h.Key == key {
			return i
		}
	}
	return -1
}

// parseTime reads an RFC 3339 time. The UTC form the bus writes
// (2006-01-02T15:04:05.999999999Z) is read directly, into the Unix time;
// others go through time.Parse.
func parseTime(s []byte) (time.Time, bool) {
	if t, ok := parseUTC(s); ok {
		return t, true
	}
	// A copy: a parse error would keep the string, and time.Parse may keep
	// parts of it in the zone name.
	t, err := time.Parse(time.RFC3339Nano, string(s))
	return t, err == nil
}

// parseUTC reads 2006-01-02T15:04:05Z with up to nine fraction digits,
// refusing what time.Parse refuses (a day past its month's end, hour 24).
func parseUTC(s []byte) (time.Time, bool) {
	n := len(s)
	if n < 20 || n > 30 || s[n-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	var bad byte
	num := func(from, to int) int64 {
		v := int64(0)
		for i := from; i < to; i++ {
			d := s[i] - '0'
			if d > 9 {
				bad = 1
			}
			v = v*10 + int64(d)
		}
		return v
	}
	y, mo, d := num(0, 4), num(5, 7), num(8, 10)
	h, mi, sec := num(11, 13), num(14, 16), num(17, 19)
	ns := int64(0)
	if frac := s[19 : n-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 {
			return time.Time{}, false
		}
		ns = num(20, n-1)
		for i := len(frac) - 1; i < 9; i++ {
			ns *= 10
		}
	}
	if bad != 0 || mo < 1 || mo > 12 || d < 1 || d > int64(daysIn(mo, y)) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
	if mo <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400 // year 0's January and February
	}
	yoe := y - era*400
	mp := (mo + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	return time.Unix(days*86400+h*3600+mi*60+sec, ns).UTC(), true
}

func daysIn(month, year int64) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// isJSONMediaType accepts application/json and the structured-syntax
// suffix +json (application/cloudevents+json, application/vnd.x+json).
func isJSONMediaType(ct string) bool {
	if ct == contentTypeJSON {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == contentTypeJSON || strings.HasSuffix(mt, "+json") || mt == "text/json"
}
