package eventstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"libx.net/eventstream"
)

// A topic whose "<topic>.dlq" would be too long is refused at On (that
// subscription could never dead-letter), but it is a valid topic: Emit to
// it works, whatever its length up to 249.
func TestTopicWithoutValidDeadLetterTopic(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	for n := 246; n <= 249; n++ {
		topic := strings.Repeat("t", n)
		if _, err := b.On(topic, func(context.Context, *eventstream.Event) error { return nil }); !errors.Is(err, eventstream.ErrInvalidTopic) {
			t.Errorf("On(%d characters): %v", n, err)
		}
		if err := b.Emit(context.Background(), topic, 1); err != nil {
			t.Errorf("Emit(%d characters): %v", n, err)
		}
	}
	nodlq := quietBus(t, eventstream.DefaultConfig(), eventstream.WithoutDeadLetter())
	defer nodlq.Close()
	topic := strings.Repeat("t", 249)
	got := make(chan struct{}, 1)
	if _, err := nodlq.On(topic, func(context.Context, *eventstream.Event) error { got <- struct{}{}; return nil }); err != nil {
		t.Fatalf("On without dead letters: %v", err)
	}
	if err := nodlq.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	<-got
}

// Memory mode's Emit refuses with ErrEncode exactly the data json.Marshal
// refuses (as Kafka mode, which encodes at Emit, does), without encoding:
// these shapes are checked against json.Marshal of a value of the type with
// every pointer, slice, map and field filled, and, when accepted, of its
// zero value too. (Values behind interfaces are left nil: those are only
// found when encoded.)

type (
	WithChan  struct{ C chan int }
	WithFunc  struct{ F func() }
	WithPlain struct{ N int }

	// An embedded unexported struct's exported fields are promoted.
	EmbedsUnexportedChan  struct{ withChanLower }
	withChanLower         struct{ C chan int }
	EmbedsUnexportedPtr   struct{ *withChanLower }
	EmbedsUnexportedOK    struct{ withPlainLower }
	withPlainLower        struct{ N int }
	EmbedsUnexportedTwice struct{ EmbedsUnexportedChan }
	// Its unexported fields are not. (These fields are read by reflection
	// only.)
	//lint:ignore U1000 read by encoding/json's and the bus's reflection
	EmbedsUnexportedHidden struct{ hiddenChan }
	//lint:ignore U1000 read by reflection
	hiddenChan struct{ c chan int }
	// An embedded unexported non-struct is never encoded.
	//lint:ignore U1000 read by reflection
	EmbedsUnexportedNonStruct struct{ chanLower }
	//lint:ignore U1000 read by reflection
	chanLower chan int
	// A tag makes the embedded struct a field of its own.
	EmbedsTagged struct {
		withChanLower `json:"inner"`
	}
	EmbedsTaggedDash struct {
		withChanLower `json:"-"`
	}
	// A shallower field hides a deeper one of the same name.
	ShadowsChan struct {
		withChanLower
		C int
	}
	// Two equals at one depth hide each other; a tag wins over no tag.
	ambiguousA struct{ C chan int }
	ambiguousB struct{ C chan int }
	Ambiguous  struct {
		ambiguousA
		ambiguousB
	}
	TaggedWins struct {
		ambiguousA
		taggedC
	}
	taggedC struct {
		X int `json:"C"`
	}
	TaggedLoses struct {
		ambiguousA
		taggedChan
	}
	taggedChan struct {
		X chan int `json:"C"`
	}
	// The same struct embedded Twice at one depth: its fields are Ambiguous.
	twiceA struct{ withChanLower }
	twiceB struct{ withChanLower }
	Twice  struct {
		twiceA
		twiceB
	}
	// An invalid tag name keeps the Go name.
	BadTag struct {
		withChanLower
		//lint:ignore SA5008 an invalid tag name is the shape under test
		C int `json:"bad'"`
	}
	// Recursion.
	Node     struct{ Next *Node }
	ChanNode struct {
		Next *ChanNode
		C    chan int
	}
	EmbedLoop struct {
		*EmbedLoop
		N int
	}

	// Marshalers: a pointer receiver is used only on an addressable value.
	valMarshal   struct{ C chan int }
	ptrMarshal   struct{ C chan int }
	ptrText      struct{ C chan int }
	textKey      struct{ K int }
	ptrTextKey   struct{ K int }
	WithPtrMarsh struct{ M ptrMarshal }
)

func (valMarshal) MarshalJSON() ([]byte, error)  { return []byte(`"v"`), nil }
func (*ptrMarshal) MarshalJSON() ([]byte, error) { return []byte(`"p"`), nil }
func (*ptrText) MarshalText() ([]byte, error)    { return []byte("t"), nil }
func (textKey) MarshalText() ([]byte, error)     { return []byte("k"), nil }
func (*ptrTextKey) MarshalText() ([]byte, error) { return []byte("k"), nil }

var encodableShapes = []any{
	0, "s", 1.5, complex(1, 2), make(chan int), func() {},
	WithChan{}, WithFunc{}, WithPlain{}, &WithChan{}, []WithChan{}, [0]WithChan{}, [1]WithChan{},
	map[string]WithPlain{}, map[float64]int{}, map[bool]int{}, map[textKey]int{}, map[ptrTextKey]int{},
	map[*ptrTextKey]int{}, map[[1]int]int{},
	EmbedsUnexportedChan{}, EmbedsUnexportedPtr{}, EmbedsUnexportedOK{}, EmbedsUnexportedTwice{},
	EmbedsUnexportedHidden{}, EmbedsUnexportedNonStruct{}, EmbedsTagged{}, EmbedsTaggedDash{},
	ShadowsChan{}, Ambiguous{}, TaggedWins{}, TaggedLoses{}, Twice{}, BadTag{},
	Node{}, ChanNode{}, &ChanNode{}, EmbedLoop{},
	valMarshal{}, ptrMarshal{}, &ptrMarshal{}, []ptrMarshal{}, [1]ptrMarshal{}, &[1]ptrMarshal{},
	map[string]ptrMarshal{}, map[string]*ptrMarshal{}, ptrText{}, &ptrText{}, WithPtrMarsh{}, &WithPtrMarsh{},
	[]*WithPtrMarsh{}, struct{ A [1]ptrMarshal }{}, &struct{ A [1]ptrMarshal }{},
	struct{ P *chan int }{}, struct {
		C chan int `json:",omitempty"`
	}{}, struct {
		C chan int `json:",omitzero"`
	}{}, struct{ I any }{}, struct{ E error }{},
}

func TestEmitEncodableFollowsEncodingJSON(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	for _, v := range encodableShapes {
		checkAgainstMarshal(t, b, reflect.TypeOf(v))
	}
}

// A struct embedding an unexported struct that holds a channel, which
// json.Marshal always refuses, is refused at Emit, naming the promoted field.
func TestEmitEmbeddedUnexportedChan(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	err := b.Emit(context.Background(), "embedded", EmbedsUnexportedChan{})
	if !errors.Is(err, eventstream.ErrEncode) {
		t.Fatalf("Emit = %v, want ErrEncode", err)
	}
	if want := "field withChanLower.C: chan values are not supported"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
}

// FuzzEmitEncodable builds types from the fuzzer's bytes — pointers,
// slices, arrays, maps, structs with embedded, tagged and clashing fields
// over the shapes above — and compares Emit's verdict with json.Marshal's.
func FuzzEmitEncodable(f *testing.F) {
	for i := range 64 {
		f.Add(uint64(i), uint64(i*7919))
	}
	bus := quietBus(f, eventstream.DefaultConfig())
	defer bus.Close()
	f.Fuzz(func(t *testing.T, a, b uint64) {
		g := typeGen{r: rand.New(rand.NewPCG(a, b))}
		checkAgainstMarshal(t, bus, g.typ(0))
	})
}

// checkAgainstMarshal fails t when Emit and json.Marshal disagree on a
// filled value of typ, or Emit accepts it and json.Marshal refuses its zero
// value.
func checkAgainstMarshal(t *testing.T, b eventstream.EventBus, typ reflect.Type) {
	t.Helper()
	filled := reflect.New(typ).Elem()
	fill(filled, 0)
	verdict := b.Emit(context.Background(), "encodable", filled.Interface())
	if verdict != nil && !errors.Is(verdict, eventstream.ErrEncode) {
		t.Fatalf("%v: Emit = %v", typ, verdict)
	}
	_, merr := json.Marshal(filled.Interface())
	if (verdict == nil) != (merr == nil) {
		t.Errorf("%v: Emit says %v, json.Marshal of a filled value says %v", typ, verdict, merr)
		return
	}
	if verdict != nil {
		return
	}
	if _, err := json.Marshal(reflect.Zero(typ).Interface()); err != nil {
		t.Errorf("%v: accepted, but json.Marshal of its zero value says %v", typ, err)
	}
}

// maxFillDepth is deeper than any type typeGen makes, but for recursive ones.
const maxFillDepth = 16

// fill sets every pointer, slice, map, chan and func in v, and every field,
// exported or not.
func fill(v reflect.Value, depth int) {
	if !v.CanSet() {
		v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	}
	switch v.Kind() {
	case reflect.Pointer:
		if depth < maxFillDepth { // a recursive type ends in nil
			p := reflect.New(v.Type().Elem())
			fill(p.Elem(), depth+1)
			v.Set(p)
		}
	case reflect.Slice:
		if depth >= maxFillDepth {
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		if depth >= maxFillDepth {
			return
		}
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), depth+1)
		}
	case reflect.Chan:
		v.Set(reflect.MakeChan(v.Type(), 0))
	case reflect.Func:
		v.Set(reflect.MakeFunc(v.Type(), func([]reflect.Value) []reflect.Value { return nil }))
	case reflect.String:
		v.SetString("s")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	}
}

// typeGen makes random types over the shapes above.
type typeGen struct{ r *rand.Rand }

var (
	leafTypes = func() []reflect.Type {
		ts := []reflect.Type{reflect.TypeFor[int](), reflect.TypeFor[string](), reflect.TypeFor[bool](),
			reflect.TypeFor[float64](), reflect.TypeFor[complex64](), reflect.TypeFor[chan int](),
			reflect.TypeFor[func()](), reflect.TypeFor[any](), reflect.TypeFor[textKey]()}
		for _, v := range encodableShapes {
			ts = append(ts, reflect.TypeOf(v))
		}
		return ts
	}()
	keyTypes = []reflect.Type{reflect.TypeFor[string](), reflect.TypeFor[int8](), reflect.TypeFor[uint](),
		reflect.TypeFor[float32](), reflect.TypeFor[bool](), reflect.TypeFor[textKey](),
		reflect.TypeFor[ptrTextKey](), reflect.TypeFor[*ptrTextKey](), reflect.TypeFor[[1]int]()}
	fieldNames = []string{"A", "B", "C"}
	fieldTags  = []reflect.StructTag{"", `json:"-"`, `json:"C"`, `json:"A,omitempty"`, `json:",omitempty"`, `json:"-,"`}
)

func (g *typeGen) typ(depth int) reflect.Type {
	if depth >= 4 || g.r.IntN(4) == 0 {
		return leafTypes[g.r.IntN(len(leafTypes))]
	}
	switch g.r.IntN(6) {
	case 0:
		return reflect.PointerTo(g.typ(depth + 1))
	case 1:
		return reflect.SliceOf(g.typ(depth + 1))
	case 2:
		return reflect.ArrayOf(g.r.IntN(2), g.typ(depth+1))
	case 3:
		return reflect.MapOf(keyTypes[g.r.IntN(len(keyTypes))], g.typ(depth+1))
	default:
		var fs []reflect.StructField
		used := map[string]bool{}
		for range 1 + g.r.IntN(3) {
			name := fieldNames[g.r.IntN(len(fieldNames))]
			if used[name] {
				continue
			}
			used[name] = true
			fs = append(fs, reflect.StructField{Name: name, Type: g.typ(depth + 1), Tag: fieldTags[g.r.IntN(len(fieldTags))]})
		}
		if g.r.IntN(2) == 0 {
			// An embedded shape (a struct of the table above, by value
			// or pointer): its fields meet the generated ones.
			et := reflect.TypeOf(encodableShapes[g.r.IntN(len(encodableShapes))])
			if et.Kind() == reflect.Struct && et.Name() != "" && et.NumMethod() == 0 && reflect.PointerTo(et).NumMethod() == 0 {
				if g.r.IntN(2) == 0 {
					et = reflect.PointerTo(et)
				}
				fs = append(fs, reflect.StructField{Name: nameOf(et), Type: et, Anonymous: true})
			}
		}
		return structOf(fs)
	}
}

// structOf is reflect.StructOf, with an embedded struct that it cannot
// embed by value beside other fields (one of a single pointer's shape)
// embedded by pointer instead.
func structOf(fs []reflect.StructField) (t reflect.Type) {
	defer func() {
		if recover() != nil {
			last := &fs[len(fs)-1]
			last.Type = reflect.PointerTo(last.Type)
			t = reflect.StructOf(fs)
		}
	}()
	return reflect.StructOf(fs)
}

func nameOf(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
