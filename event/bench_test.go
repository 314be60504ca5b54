package event

import "testing"

var sink *Event

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sink = New("bench", nil)
	}
}
