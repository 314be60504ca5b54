package kafka

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var jsonSeeds = []string{
	`{"n":1}`, `{"user_id":"12345","email":"user@example.com","tags":["a","b"],"ok":true,"x":null}`,
	` [1, -0, 0.5, 1e3, -2.5E-3, 1E+2] `, `"plain"`, `"esc\"aped\n\u00e9\ud83d\ude00"`, `"h\u00e9llo wörld"`,
	`"bad utf8 ` + "\xff" + `"`, `{"a":{"b":{"c":[[],{}]}}}`, `{"dup":1,"dup":2}`, `{}`, `[]`, `true`, `false`, `null`,
	`1e400`, `-`, `01`, `1.`, `.5`, `1e`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a":1} x`, `"unterminated`,
	"\"ctl\x01\"", `{"k\u0041y":"v"}`, `nul`, `tru`, ``, `   `, `[` + strings.Repeat(`[`, 1200) + strings.Repeat(`]`, 1201),
	`{"a":"\\"}`, `"\\`, `"\x"`, `123456789012345678901234567890`, `-0.0e-0`,
}

// decodeJSON gives what encoding/json gives, value and error alike.
func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkDecodeJSON(t, []byte(s))
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeJSON(t, data) })
}

func checkDecodeJSON(t *testing.T, data []byte) {
	t.Helper()
	var want any
	werr := json.Unmarshal(data, &want)
	got, gerr := decodeJSON(data)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: error %v, encoding/json %v", data, gerr, werr)
	}
	if werr != nil {
		if werr.Error() != gerr.Error() {
			t.Fatalf("%q: error %q, encoding/json %q", data, gerr, werr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %#v, encoding/json %#v", data, got, want)
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(`{"order_id":12345,"user":"u-778","items":[{"sku":"A-1","qty":2,"price":9.99},{"sku":"B-7","qty":1,"price":24.5}],"paid":true}`)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var v any
			_ = json.Unmarshal(data, &v)
		}
	})
	b.Run("decodeJSON", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = decodeJSON(data)
		}
	})
}

// plainASCII agrees with a byte-by-byte check on every byte value in every
// position of an 8-byte word and its tail.
func TestPlainASCII(t *testing.T) {
	slow := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 || c >= 0x80 || c == '\\' {
				return false
			}
		}
		return true
	}
	for n := 0; n <= 17; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				if pos > 0 {
					b[pos-1] = 0x1f + byte(c&1) // neighbours near the limits
				}
				if got, want := plainASCII(b), slow(b); got != want {
					t.Fatalf("%q: %v, want %v", b, got, want)
				}
			}
		}
	}
}
