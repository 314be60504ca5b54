package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/internal/transport"
)

// The offset committed never passes a visit that is not done, whatever
// order visits finish in, and stops for good at a refused one.
func TestReadProgressCommitsInOrder(t *testing.T) {
	p := newReadProgress("t.dlq")
	var dones []func(transport.Visit)
	for off := range int64(5) {
		if err := p.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		dones = append(dones, p.start(&kgo.Record{Partition: 0, Offset: off}))
	}
	at := func() int64 {
		os := p.committable()
		o, ok := os.Lookup("t.dlq", 0)
		if !ok {
			return -1
		}
		return o.At
	}
	dones[1](transport.VisitDone)
	if got := at(); got != -1 {
		t.Fatalf("committed %d with offset 0 under way", got)
	}
	dones[0](transport.VisitPassed)
	if got := at(); got != 2 {
		t.Fatalf("committed %d, want 2", got)
	}
	dones[3](transport.VisitStop)
	dones[4](transport.VisitDone)
	dones[2](transport.VisitDone)
	if got := at(); got != 3 || !p.stopped(0) {
		t.Fatalf("committed %d (stopped %v), want 3 and stopped", got, p.stopped(0))
	}
	dones[2](transport.VisitStop) // a second call changes nothing
	p.waitUpTo(-1)
	if got := at(); got != -1 {
		t.Fatalf("nothing moved, yet %d committable", got)
	}
}
