package kafka

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"unsafe"
)

// decodeJSON decodes a record value into the values encoding/json gives an
// `any` (map[string]any, []any, string, float64, bool, nil), with the same
// result for every input. It is a single pass without reflection, about
// twice as fast as json.Unmarshal on event-sized payloads, which is most
// of a consumer's own CPU; anything it does not handle itself — a string
// with escapes or non-ASCII bytes, a number out of float64's range, deep
// nesting, any syntax error — goes to encoding/json (for that string, or
// for the whole value), so that results and errors stay encoding/json's.
//
// The strings of a value up to maxSharedJSON bytes (object keys included)
// are views into one copy of it, made at the first string: one allocation
// instead of one per string, and never a view into data itself, which is
// the record's fetch buffer. A handler that keeps one of them keeps that
// copy, at most maxSharedJSON bytes; larger values copy each string.
func decodeJSON(data []byte) (any, error) {
	d := jsonDecoder{data: data, share: len(data) <= maxSharedJSON}
	d.skipSpace()
	v, ok := d.value(0)
	if ok {
		d.skipSpace()
		if d.pos == len(d.data) {
			return v, nil
		}
	}
	var out any
	err := json.Unmarshal(data, &out)
	return out, err
}

type jsonDecoder struct {
	data  []byte
	pos   int
	share bool   // strings are views into own
	own   []byte // the copy of data, once a string needs it
}

const maxSharedJSON = 4 << 10

// maxJSONDepth is below encoding/json's own limit; deeper values are left
// to it.
const maxJSONDepth = 1000

func (d *jsonDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// value decodes the value at d.pos; false means "let encoding/json do it".
func (d *jsonDecoder) value(depth int) (any, bool) {
	if d.pos >= len(d.data) || depth > maxJSONDepth {
		return nil, false
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, ok := d.string()
		if !ok {
			return nil, false
		}
		return s, true
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, false
}

func (d *jsonDecoder) literal(lit string) bool {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return false
	}
	d.pos += len(lit)
	return true
}

func (d *jsonDecoder) object(depth int) (any, bool) {
	d.pos++ // {
	m := make(map[string]any)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return m, true
	}
	for {
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, false
		}
		k, ok := d.string()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, false
		}
		d.pos++
		d.skipSpace()
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, false
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case '}':
			d.pos++
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *jsonDecoder) array(depth int) (any, bool) {
	d.pos++ // [
	a := make([]any, 0)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return a, true
	}
	for {
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, false
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case ']':
			d.pos++
			return a, true
		default:
			return nil, false
		}
	}
}

// string decodes the string at d.pos. Plain ASCII strings are copied as
// they are; one with an escape or a non-ASCII byte is unquoted by
// encoding/json (which also replaces invalid UTF-8 as it does).
func (d *jsonDecoder) string() (string, bool) {
	start := d.pos
	d.pos++ // "
	// Most strings are plain ASCII up to the first quote: found with
	// IndexByte and checked eight bytes at a time, instead of byte by byte.
	if q := bytes.IndexByte(d.data[d.pos:], '"'); q >= 0 && plainASCII(d.data[d.pos:d.pos+q]) {
		d.pos += q + 1
		return d.plain(start+1, d.pos-1), true
	}
	plain := true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			if plain {
				return d.plain(start+1, d.pos-1), true
			}
			var s string
			if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			d.pos += 2
		case c < 0x20:
			return "", false // control characters must be escaped
		case c >= 0x80:
			plain = false
			d.pos++
		default:
			d.pos++
		}
	}
	return "", false
}

// plain returns data[from:to], a string without escapes, as a copy.
func (d *jsonDecoder) plain(from, to int) string {
	if !d.share || from == to {
		return string(d.data[from:to])
	}
	if d.own == nil {
		d.own = bytes.Clone(d.data)
	}
	return unsafe.String(&d.own[from], to-from)
}

// plainASCII reports whether b holds no backslash, no control character
// and no byte of 0x80 or above: a JSON string body that means itself.
func plainASCII(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		bs := x ^ ones*'\\'
		// High bits of: x itself (bytes >= 0x80), bytes below 0x20, bytes
		// equal to the backslash (zero in bs); a borrow can only follow a
		// byte that matched already.
		if (x|(x-ones*0x20)&^x|(bs-ones)&^bs)&highs != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

var errJSONNumber = errors.New("not a JSON number")

// number decodes a number as encoding/json does for `any`: float64.
func (d *jsonDecoder) number() (any, bool) {
	start := d.pos
	if err := d.scanNumber(); err != nil {
		return nil, false
	}
	b := d.data[start:d.pos]
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	if err != nil {
		return nil, false // out of range: encoding/json reports it
	}
	return f, true
}

// scanNumber moves past -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *jsonDecoder) scanNumber() error {
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos >= len(d.data) {
		return errJSONNumber
	}
	if d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return errJSONNumber
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return errJSONNumber
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return errJSONNumber
		}
	}
	return nil
}
