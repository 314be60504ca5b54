package eventstream

import (
	"encoding/json"
	"fmt"
	"mime"
	"reflect"
	"strconv"
	"strings"
	"time"

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

// encode turns an event into its record: the JSON of Data as the value (or
// Raw as it is, for an event read from Kafka and sent on, such as a dead
// letter), the key, and the headers with the CloudEvents attributes.
func (t *kafkaTransport) encode(e *Event) (*kgo.Record, error) {
	value := e.Raw
	if value == nil {
		var err error
		if value, err = json.Marshal(e.Data); err != nil {
			return nil, &EncodeError{Type: typeName(e.Data), Err: err}
		}
	}
	r := &kgo.Record{Topic: e.Topic, Value: value, Timestamp: e.Time}
	if e.Key != "" {
		r.Key = []byte(e.Key)
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
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderCloudEventsSpecVersion, Value: []byte(cloudEventsSpecVersion)},
		kgo.RecordHeader{Key: HeaderCloudEventsID, Value: []byte(e.ID)},
		kgo.RecordHeader{Key: HeaderCloudEventsTime, Value: e.Time.UTC().AppendFormat(make([]byte, 0, 32), time.RFC3339Nano)})
	if !hasSource {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCloudEventsSource, Value: []byte(t.cfg.Source)})
	}
	if !hasType {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCloudEventsType, Value: []byte(e.Topic)})
	}
	if !hasContentType {
		hs = append(hs, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(contentTypeJSON)})
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
func decode(r *kgo.Record) (*Event, error) {
	e := &Event{
		Topic:  r.Topic,
		Raw:    r.Value,
		Record: &event.Record{Partition: r.Partition, Offset: r.Offset},
	}
	if len(r.Key) > 0 {
		e.Key = string(r.Key)
	}
	if len(r.Headers) > 0 {
		e.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			e.Headers[h.Key] = string(h.Value)
		}
	}
	if e.ID = e.Headers[HeaderCloudEventsID]; e.ID == "" {
		e.ID = r.Topic + "-" + strconv.FormatInt(int64(r.Partition), 10) + "-" + strconv.FormatInt(r.Offset, 10)
	}
	if ts := e.Headers[HeaderCloudEventsTime]; ts != "" {
		if tm, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			e.Time = tm
		}
	}
	if e.Time.IsZero() {
		e.Time = r.Timestamp
	}
	if len(r.Value) == 0 {
		return e, nil
	}
	if ct := e.Headers[HeaderContentType]; ct != "" && !isJSONMediaType(ct) {
		return e, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, ContentType: ct,
			Err: fmt.Errorf("content-type %q is not JSON", ct)}
	}
	if err := json.Unmarshal(r.Value, &e.Data); err != nil {
		e.Data = nil
		return e, &DecodeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
			ContentType: e.Headers[HeaderContentType], Err: err}
	}
	return e, nil
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

// DecodeError says why a record's value could not be read as JSON. In
// distributed mode, with KafkaConfig.NonJSON set to NonJSONDeadLetter, it is
// the reason given on the dead letter.
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
