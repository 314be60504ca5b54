package peers_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// receive returns the next message on ch, failing the test after 15 s.
func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatal("messages channel closed")
		}
		return msg
	case <-time.After(15 * time.Second):
		t.Fatal("no message within 15s")
	}
	return nil
}

// TestWatermillAdapterRoundTrip: payloads come back byte for byte, JSON
// or not, with their UUID and metadata; a Nack delivers the message again;
// a subscription whose context ends closes its channel and leaves the
// message it did not acknowledge to the next member of its group.
func TestWatermillAdapterRoundTrip(t *testing.T) {
	brokers, _ := kafkaBrokers(t)
	newPubSub := wmConstructor(wmConfig(brokers, 1))
	pub, sub := newPubSub(t, "")
	topic := "roundtrip-" + watermill.NewShortUUID()

	payloads := [][]byte{
		[]byte(`{"a":1}`),    // compact JSON: the record value as it is
		[]byte(`{ "a": 1 }`), // JSON that encoding/json would compact
		[]byte("not json \x00\xff"),
		[]byte(`"text"`),
		{},
	}
	var sent []*message.Message
	for i, p := range payloads {
		msg := message.NewMessage(watermill.NewUUID(), p)
		msg.Metadata.Set("index", string(rune('0'+i)))
		msg.Metadata.Set("tenant", "acme")
		sent = append(sent, msg)
	}
	if err := pub.Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range sent {
		got := receive(t, ch)
		if i == 1 {
			// Nack the second message once: it comes again, next.
			got.Nack()
			got = receive(t, ch)
		}
		if got.UUID != want.UUID {
			t.Fatalf("message %d: UUID %q, want %q (one partition: in order)", i, got.UUID, want.UUID)
		}
		if !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("message %d: payload %q, want %q", i, got.Payload, want.Payload)
		}
		for _, k := range []string{"index", "tenant"} {
			if got.Metadata.Get(k) != want.Metadata.Get(k) {
				t.Errorf("message %d: metadata %s=%q, want %q", i, k, got.Metadata.Get(k), want.Metadata.Get(k))
			}
		}
		if got.Metadata.Get(uuidHeader) != "" || got.Metadata.Get(payloadHeader) != "" {
			t.Errorf("message %d: the adapter's own headers leak into metadata: %v", i, got.Metadata)
		}
		got.Ack()
	}

	// One more message, received and never acknowledged; then the
	// subscription's context ends.
	last := message.NewMessage(watermill.NewUUID(), []byte("last"))
	if err := pub.Publish(topic, last); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, ch); got.UUID != last.UUID {
		t.Fatalf("got %q, want %q", got.UUID, last.UUID)
	}
	cancel()
	deadline := time.After(15 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-deadline:
			t.Fatal("channel not closed after the subscription's context ended")
		}
	}

	// The group's next member gets the unacknowledged message, and only
	// that one: the acknowledged ones were committed.
	_, next := newPubSub(t, "")
	ch2, err := next.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, ch2)
	if got.UUID != last.UUID {
		t.Fatalf("next member got %q, want the unacknowledged %q", got.UUID, last.UUID)
	}
	got.Ack()
	select {
	case msg := <-ch2:
		t.Fatalf("unexpected message %q (payload %q) after the unacknowledged one", msg.UUID, msg.Payload)
	case <-time.After(500 * time.Millisecond):
	}
}
