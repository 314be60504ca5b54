package memory

import (
	"context"
	"testing"
	"time"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/transport"
)

// Publish remembers the routes of the topic it published to last; once
// the topic's last subscription leaves and another arrives, the remembered
// routes are stale and the newcomer must get the events.
func TestPublishAfterTopicRoutesRebuilt(t *testing.T) {
	tr := newTransport(t, 10)
	ctx := context.Background()
	first := sub("t", "a", func(*event.Event) {})
	if err := tr.Subscribe(first); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, event.New("t", 1), transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Unsubscribe(first); err != nil {
		t.Fatal(err)
	}
	got := make(chan *event.Event, 1)
	again := sub("t", "b", func(e *event.Event) { got <- e })
	if err := tr.Subscribe(again); err != nil {
		t.Fatal(err)
	}
	defer tr.Unsubscribe(again)
	e := event.New("t", 2)
	if err := tr.Publish(ctx, e, transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d != e {
			t.Fatalf("got event %s, want %s", d.ID, e.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription that came after the topic's routes were rebuilt got nothing")
	}
}
