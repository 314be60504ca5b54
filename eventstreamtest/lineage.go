package eventstreamtest

import (
	"context"
	"errors"
	"testing"

	"libx.net/eventstream"
)

// testLineage: an Emit outside handlers starts a chain (no cause, its own
// id as correlation id); an Emit with a handler's context — a retry's
// included — is caused by the handled event and stays in its chain;
// WithCorrelationID names a chain.
func testLineage(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	first, second := Topic(t), Topic(t)
	firsts, seconds := newCollector(), newCollector()
	if _, err := b.On(second, seconds.handler("")); err != nil {
		t.Fatal(err)
	}
	record := firsts.handler("")
	if _, err := b.On(first, func(ctx context.Context, e *eventstream.Event) error {
		if eventstream.Attempt(ctx) == 1 {
			return errors.New("the first attempt fails")
		}
		if err := record(ctx, e); err != nil {
			return err
		}
		return b.Emit(ctx, second, "caused")
	}, fastRetry(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), first, "plain"); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), first, "named", eventstream.WithCorrelationID("request-7")); err != nil {
		t.Fatal(err)
	}
	firsts.wait(t, 2, tr.Timeout)
	seconds.wait(t, 2, tr.Timeout)
	firsts.mu.Lock()
	seconds.mu.Lock()
	defer firsts.mu.Unlock()
	defer seconds.mu.Unlock()
	byCause := map[string]*eventstream.Event{}
	for _, e := range seconds.events {
		byCause[e.CausationID] = e
	}
	for _, e := range firsts.events {
		want := e.ID
		if e.CorrelationID == "request-7" {
			want = "request-7"
		}
		if e.CausationID != "" || e.CorrelationID != want {
			t.Errorf("a chain's first event: causation %q correlation %q, want \"\" and %q", e.CausationID, e.CorrelationID, want)
		}
		c := byCause[e.ID]
		if c == nil {
			t.Errorf("no event caused by %s (caused: %v)", e.ID, byCause)
			continue
		}
		if c.CorrelationID != want {
			t.Errorf("caused by %s: correlation %q, want %q", e.ID, c.CorrelationID, want)
		}
	}
}
