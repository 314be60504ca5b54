package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The oldest record not done is the one at the mark; before it is fetched,
// the last done record's timestamp stands in for it; caught up, there is
// none.
func TestPartStateOldest(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ps := newPartState(0)
	if got := ps.oldest(); got != 0 {
		t.Fatalf("nothing known: %d", got)
	}
	ps.setStart(10)
	ps.hwm.Store(13)
	if got := ps.oldest(); got != 0 {
		t.Fatalf("nothing fetched nor handled yet: %d, want 0 (unknown)", got)
	}
	first, _ := ps.track([]*kgo.Record{{Offset: 10, Timestamp: at(1)}, {Offset: 11, Timestamp: at(2)}, {Offset: 12, Timestamp: at(3)}})
	if got := ps.oldest(); got != at(1).UnixNano() {
		t.Fatalf("three pending: %v, want the first's time", time.Unix(0, got))
	}
	ps.begin(11)
	ps.finish(first+1, 11, 0) // out of order: the mark stays at 10
	if got := ps.oldest(); got != at(1).UnixNano() {
		t.Fatalf("10 still pending: %v, want its time", time.Unix(0, got))
	}
	ps.begin(10)
	ps.finish(first, 10, 0)
	if got := ps.oldest(); got != at(3).UnixNano() {
		t.Fatalf("12 pending: %v, want its time", time.Unix(0, got))
	}
	ps.begin(12)
	ps.finish(first+2, 12, 0)
	if got := ps.oldest(); got != 0 {
		t.Fatalf("caught up: %v, want 0", time.Unix(0, got))
	}
	ps.hwm.Store(20) // produced since, not fetched yet
	if got := ps.oldest(); got != at(3).UnixNano() {
		t.Fatalf("records beyond the mark not fetched: %v, want the last done record's time", time.Unix(0, got))
	}
}
