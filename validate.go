package eventstream

import (
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
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
// It follows encoding/json's own rules — which fields of a struct are
// encoded (embedded structs' fields promoted, exported or not; hidden and
// ambiguous names dropped), and when a MarshalJSON or MarshalText method
// with a pointer receiver is used (only on an addressable value) — so that
// memory mode refuses what Kafka mode, which encodes, refuses. A type is
// refused when a value of it with every pointer, slice and map filled fails
// to encode; a nil one may encode ("null"), but is refused all the same, as
// its type is the same. Values hidden behind interfaces (a func inside a
// map[string]any) are only found when the data is really encoded: at Emit
// in Kafka mode, at Event.Unmarshal in memory mode.
func checkEncodable(data any) error {
	switch data.(type) {
	case nil, string, []byte, bool, int, int64, float64, map[string]any, map[string]string, []any, json.RawMessage:
		return nil
	}
	t := reflect.TypeOf(data)
	if last := lastVerdict.Load(); last != nil && last.t == t {
		return last.err // most Emits send the type of the one before
	}
	if v, ok := typeVerdicts.Load(t); ok {
		last := v.(*verdictOf)
		lastVerdict.Store(last)
		return last.err
	}
	v := &verdictOf{t: t}
	// The data given to Emit is not addressable: json.Marshal sees a copy.
	if reason := unencodable(t, false, map[typeAt]bool{}); reason != "" {
		v.err = &EncodeError{Type: t.String(), Err: errors.New(reason)}
	}
	typeVerdicts.Store(t, v)
	lastVerdict.Store(v)
	return v.err
}

var typeVerdicts sync.Map // reflect.Type → *verdictOf

// lastVerdict is the verdict of the type checked last, compared before the
// map: a pointer compare instead of hashing an interface per Emit. Verdicts
// are made once per type, so switching types allocates nothing.
var lastVerdict atomic.Pointer[verdictOf]

type verdictOf struct {
	t   reflect.Type
	err error // nil when encodable
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// typeAt is a type met where its values are addressable or not: a method
// with a pointer receiver is used only on an addressable value.
type typeAt struct {
	t    reflect.Type
	addr bool
}

// unencodable returns why a value of type t cannot be JSON-encoded, or "".
// addr says whether encoding/json meets the value addressable there: behind
// a pointer, in a slice, in a field or an array element of an addressable
// value (not at the top, nor in a map).
func unencodable(t reflect.Type, addr bool, seen map[typeAt]bool) string {
	if seen[typeAt{t, addr}] {
		return "" // met before: its verdict is being made, or was ""
	}
	seen[typeAt{t, addr}] = true
	if t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) {
		return ""
	}
	if t.Kind() != reflect.Pointer && addr &&
		(reflect.PointerTo(t).Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)) {
		return ""
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return t.Kind().String() + " values are not supported"
	case reflect.Pointer, reflect.Slice:
		return unencodable(t.Elem(), true, seen)
	case reflect.Array:
		if t.Len() == 0 {
			return "" // no element is ever encoded
		}
		return unencodable(t.Elem(), addr, seen)
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !t.Key().Implements(textMarshalerType) {
				return "map key type " + t.Key().String() + " is not supported"
			}
		}
		return unencodable(t.Elem(), false, seen)
	case reflect.Struct:
		for _, f := range jsonFields(t) {
			if r := unencodable(f.typ, addr || f.viaPointer, seen); r != "" {
				return "field " + f.path + ": " + r
			}
		}
	}
	return ""
}

// jsonField is a field that encoding/json encodes.
type jsonField struct {
	name       string // its JSON name
	tagged     bool   // the name comes from a json tag
	depth      int    // 0 for t's own fields, 1 for those promoted from an embedded struct…
	path       string // its Go selector, through the embedded structs
	typ        reflect.Type
	viaPointer bool // reached through an embedded pointer: addressable
}

// jsonFields returns the fields of struct type t that encoding/json
// encodes, by its rules (encoding/json's typeFields): exported fields and
// those promoted from embedded structs, exported or not, breadth first; of
// the fields sharing a name, the shallowest wins, a tagged one before
// untagged ones at its depth, and two equals hide each other.
func jsonFields(t reflect.Type) []jsonField {
	type embedded struct {
		typ        reflect.Type
		depth      int
		path       string
		viaPointer bool
	}
	var fields []jsonField
	next := []embedded{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, e := range current {
			if visited[e.typ] {
				continue
			}
			visited[e.typ] = true
			for i := 0; i < e.typ.NumField(); i++ {
				sf := e.typ.Field(i)
				ft := sf.Type
				if ft.Kind() == reflect.Pointer && ft.Name() == "" {
					ft = ft.Elem()
				}
				if sf.Anonymous {
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue // an embedded unexported non-struct is never encoded
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !isValidJSONTag(name) {
					name = ""
				}
				path := sf.Name
				if e.path != "" {
					path = e.path + "." + sf.Name
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					f := jsonField{name: name, tagged: name != "", depth: e.depth, path: path,
						typ: sf.Type, viaPointer: e.viaPointer}
					if f.name == "" {
						f.name = sf.Name
					}
					fields = append(fields, f)
					if count[e.typ] > 1 {
						// The struct is embedded twice at this depth: its
						// fields are ambiguous, and hide each other.
						fields = append(fields, f)
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, embedded{typ: ft, depth: e.depth + 1, path: path,
						viaPointer: e.viaPointer || sf.Type.Kind() == reflect.Pointer})
				}
			}
		}
	}
	slices.SortStableFunc(fields, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.depth, b.depth); c != 0 {
			return c
		}
		switch {
		case a.tagged && !b.tagged:
			return -1
		case !a.tagged && b.tagged:
			return 1
		}
		return 0
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		if same := fields[i:j]; len(same) == 1 || same[0].depth != same[1].depth || same[0].tagged != same[1].tagged {
			out = append(out, same[0])
		}
		i = j
	}
	return out
}

// isValidJSONTag is encoding/json's rule for a name in a json tag; a field
// with an invalid one keeps its Go name.
func isValidJSONTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
