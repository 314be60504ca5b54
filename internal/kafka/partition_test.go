package kafka

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func trackOne(ps *partState, off int64) (int64, bool) {
	return ps.track([]*kgo.Record{{Offset: off}})
}

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
				seq, ok := trackOne(ps, off)
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
			if !ps.begin(x.off) {
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

// An event that is not done stops its partition: the mark stays below it
// whatever finishes after, and nothing more is dispatched or started.
func TestPartStateStall(t *testing.T) {
	ps := newPartState(0)
	ps.setStart(10)
	var seqs []int64
	for off := int64(10); off < 14; off++ {
		seq, ok := trackOne(ps, off)
		if !ok {
			t.Fatal("track refused")
		}
		seqs = append(seqs, seq)
	}
	for _, off := range []int64{11, 12} {
		if !ps.begin(off) {
			t.Fatal("begin refused")
		}
	}
	ps.stall(11)
	ps.finish(seqs[2], 12, 1) // began before the stall
	if !ps.begin(10) {
		t.Fatal("an offset before the stall was refused")
	}
	ps.finish(seqs[0], 10, 1)
	if got := ps.markOffset(); got != 11 {
		t.Fatalf("mark %d, want 11", got)
	}
	if eo, ok := ps.toCommit(); !ok || eo.Offset != 11 {
		t.Fatalf("toCommit %v %v, want 11", eo, ok)
	}
	if _, ok := trackOne(ps, 14); ok {
		t.Fatal("a stalled partition took a record")
	}
	if ps.begin(13) {
		t.Fatal("a stalled partition started a handler after the stall")
	}
	ps.waitIdle(0) // every handler ended: must not block
}

// A fetch's records are tracked at once, with consecutive sequence numbers.
func TestPartStateTrackBatch(t *testing.T) {
	ps := newPartState(0)
	ps.setStart(5)
	first, ok := ps.track([]*kgo.Record{{Offset: 5}, {Offset: 7}, {Offset: 8}})
	if !ok {
		t.Fatal("track refused")
	}
	for range 3 {
		ps.begin(5)
	}
	ps.finish(first+2, 8, 0)
	ps.finish(first, 5, 0)
	if got := ps.markOffset(); got != 6 {
		t.Fatalf("mark %d, want 6", got)
	}
	ps.finish(first+1, 7, 0)
	if got := ps.markOffset(); got != 9 {
		t.Fatalf("mark %d, want 9", got)
	}
	if got := ps.dispatchedEnd(); got != 9 {
		t.Fatalf("dispatched end %d, want 9", got)
	}
}
