//go:build kafkamove

// Excluded while the Kafka transport moves to internal/kafka; this file is deleted when it lands.

package eventstream

import (
	"math/rand/v2"
	"testing"
)

// The committed mark is always the first offset not finished, however the
// lanes finish, with gaps in the offsets (compaction, transaction markers).
func TestPartStateMark(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		ps := newPartState(0)
		ps.setStart(100)
		type rec struct{ seq, off int64 }
		var open []rec
		finished := map[int64]bool{}
		var offs []int64
		off := int64(100)
		for i := 0; i < 2000; i++ {
			if r.IntN(3) > 0 || len(open) == 0 {
				off += 1 + int64(r.IntN(2)) // sometimes a gap
				seq, ok := ps.track(off)
				if !ok {
					t.Fatal("track refused")
				}
				open = append(open, rec{seq, off})
				offs = append(offs, off)
				continue
			}
			j := r.IntN(min(len(open), 8)) // lanes finish roughly in order
			x := open[j]
			open = append(open[:j], open[j+1:]...)
			if !ps.begin() {
				t.Fatal("begin refused")
			}
			ps.finish(x.seq, x.off, 3)
			finished[x.off] = true
			want := int64(100)
			for _, o := range offs {
				if !finished[o] {
					break
				}
				want = o + 1
			}
			if got := ps.markOffset(); got != want {
				t.Fatalf("round %d step %d: mark %d, want %d", round, i, got, want)
			}
		}
	}
}
