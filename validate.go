package eventstream

import (
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
)

// maxTopicLen is Kafka's limit; memory mode applies it too so that switching
// modes never turns a working topic into an error.
const maxTopicLen = 249

func validateTopic(topic string) error {
	switch {
	case topic == "":
		return &TopicError{Topic: topic, Reason: "empty"}
	case len(topic) > maxTopicLen:
		return &TopicError{Topic: topic, Reason: "longer than 249 characters"}
	case topic == "." || topic == "..":
		return &TopicError{Topic: topic, Reason: `"." and ".." are reserved`}
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return &TopicError{Topic: topic, Reason: "only [a-zA-Z0-9._-] are allowed"}
		}
	}
	return nil
}

// checkEncodable rejects data whose static type JSON can never encode
// (channels, functions, complex numbers, maps with unsupported keys), without
// encoding it: the verdict is cached per type, so Emit pays one map lookup.
// Values hidden behind interfaces (a func inside a map[string]any) are only
// found when the data is really encoded: at Emit in Kafka mode, at
// Event.Unmarshal in memory mode.
func checkEncodable(data any) error {
	switch data.(type) {
	case nil, string, []byte, bool, int, int64, float64, map[string]any, map[string]string, []any, json.RawMessage:
		return nil
	}
	t := reflect.TypeOf(data)
	if v, ok := typeVerdicts.Load(t); ok {
		if v == nil {
			return nil
		}
		return v.(error)
	}
	var verdict error
	if reason := unencodable(t, map[reflect.Type]bool{}); reason != "" {
		verdict = &EncodeError{Type: t.String(), Err: errors.New(reason)}
	}
	typeVerdicts.Store(t, verdict)
	return verdict
}

var typeVerdicts sync.Map // reflect.Type → error (nil when encodable)

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// unencodable returns why t cannot be JSON-encoded, or "".
func unencodable(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] {
		return ""
	}
	seen[t] = true
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return ""
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return t.Kind().String() + " values are not supported"
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return unencodable(t.Elem(), seen)
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !t.Key().Implements(textMarshalerType) {
				return "map key type " + t.Key().String() + " is not supported"
			}
		}
		return unencodable(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			if r := unencodable(f.Type, seen); r != "" {
				return "field " + f.Name + ": " + r
			}
		}
	}
	return ""
}
