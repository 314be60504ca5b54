package telemetry_test

import (
	"context"
	"strings"
	"testing"
	"unsafe"

	"libx.net/eventstream/event"
	itel "libx.net/eventstream/internal/telemetry"
)

// History entries keep copies of the lineage ids (a view of a reused
// buffer stays what it was; long ids are kept whole), the correlation id of
// a chain's first event is its id, and a dead letter's send is marked.
func TestHistoryKeepsLineage(t *testing.T) {
	c := newChains(t, itel.Config{History: 10}, nop)
	buf := []byte("0190a3c2-0000-7000-8000-0000000000aa")
	root := event.New("orders", 1)
	root.CorrelationID = root.ID
	child := event.New("orders", 2)
	child.CausationID = unsafe.String(&buf[0], len(buf))
	child.CorrelationID = strings.Repeat("r", 100)
	if err := c.run(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if err := c.run(context.Background(), child); err != nil {
		t.Fatal(err)
	}
	dl := event.New("orders.dlq", 3)
	dl.CausationID, dl.CorrelationID = child.ID, child.CorrelationID
	_ = c.emit(itel.WithDeadLetter(context.Background()), dl)
	copy(buf, "XXXXXXXX")

	entries, from := c.tel.All()
	if len(entries) != 5 || !from.IsZero() {
		t.Fatalf("All: %d entries, complete from %v; want 5, zero", len(entries), from)
	}
	for _, h := range entries {
		switch h.EventID {
		case root.ID:
			if h.CausationID != "" || h.CorrelationID != root.ID || h.DeadLetter {
				t.Errorf("root %s: %+v", h.Operation, h)
			}
		case child.ID:
			if h.CausationID != "0190a3c2-0000-7000-8000-0000000000aa" || h.CorrelationID != child.CorrelationID || h.DeadLetter {
				t.Errorf("child %s: causation %q correlation %q", h.Operation, h.CausationID, h.CorrelationID)
			}
		case dl.ID:
			if !h.DeadLetter || h.CausationID != child.ID {
				t.Errorf("dead letter: %+v", h)
			}
		}
	}
}

// Once a ring has wrapped, All says from when on it holds everything.
func TestHistoryAllSaysWhenComplete(t *testing.T) {
	c := newChains(t, itel.Config{History: 3}, nop)
	for range 5 {
		_ = c.emit(context.Background(), event.New("orders", 1))
	}
	entries, from := c.tel.All()
	if len(entries) != 3 || from.IsZero() {
		t.Fatalf("All: %d entries, complete from %v", len(entries), from)
	}
	for _, h := range entries {
		if h.Start.Add(h.Duration).Before(from) {
			t.Errorf("entry ended %v, before the horizon %v", h.Start.Add(h.Duration), from)
		}
	}
}
