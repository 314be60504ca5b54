package eventstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"libx.net/eventstream"
)

type order struct {
	ID    int    `json:"id"`
	Items []item `json:"items"`
}

type item struct {
	SKU string `json:"sku"`
}

// A typed handler receives its own type in both modes; data of another
// shape that still decodes (a map in memory mode) is converted.
func TestHandleTyped(t *testing.T) {
	for _, never := range []bool{false, true} {
		tune := func(cfg *eventstream.Config) {
			if cfg.Kafka != nil && never {
				cfg.Kafka.DecodeData = eventstream.DecodeDataNever
			}
		}
		eachMode(t, tune, func(t *testing.T, b eventstream.EventBus) {
			got := make(chan order, 2)
			if _, err := b.On("orders", eventstream.Handle(func(ctx context.Context, e *eventstream.Event, o order) error {
				got <- o
				return nil
			})); err != nil {
				t.Fatal(err)
			}
			want := order{ID: 42, Items: []item{{SKU: "a-1"}}}
			if err := b.Emit(context.Background(), "orders", want); err != nil {
				t.Fatal(err)
			}
			if err := b.Emit(context.Background(), "orders", map[string]any{"id": 7}); err != nil {
				t.Fatal(err)
			}
			for _, w := range []order{want, {ID: 7}} {
				if o := <-got; fmt.Sprint(o) != fmt.Sprint(w) {
					t.Errorf("handler got %+v, want %+v", o, w)
				}
			}
		})
	}
}

// In memory mode a value of the handler's type is handed over as it is:
// no JSON round trip, which a type with unexported state would not survive.
func TestHandleMemoryNoRoundTrip(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	type secret struct{ v int } // no exported field: JSON would lose v
	got := make(chan *secret, 1)
	if _, err := b.On("s", eventstream.Handle(func(_ context.Context, _ *eventstream.Event, s *secret) error {
		got <- s
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	sent := &secret{v: 9}
	if err := b.Emit(context.Background(), "s", sent); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != sent {
		t.Errorf("handler got %p (%+v), want the emitted pointer %p", s, s, sent)
	}
}

// Data that does not decode into the handler's type is a permanent
// failure: one attempt, a dead letter naming the type and the reason.
func TestHandleUndecodableIsPermanent(t *testing.T) {
	eachMode(t, nil, func(t *testing.T, b eventstream.EventBus) {
		dlq := newEvents()
		calls := 0
		if _, err := b.On("orders", eventstream.Handle(func(context.Context, *eventstream.Event, order) error {
			calls++
			return nil
		}), eventstream.WithConsumerGroup("billing")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.On("orders.dlq", dlq.handler); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit(context.Background(), "orders", "not an order"); err != nil {
			t.Fatal(err)
		}
		d := dlq.wait(t, 1)[0]
		reason := d.Header(eventstream.HeaderDeadLetterReason)
		if !strings.Contains(reason, "cannot be decoded into eventstream_test.order") || d.Header(eventstream.HeaderDeadLetterAttempts) != "1" {
			t.Errorf("dead letter after %s attempts, reason %q; want 1 attempt naming the type", d.Header(eventstream.HeaderDeadLetterAttempts), reason)
		}
		if calls != 0 {
			t.Errorf("handler called %d times, want 0", calls)
		}
	})
}

func TestHandleErrorType(t *testing.T) {
	h := eventstream.Handle(func(context.Context, *eventstream.Event, order) error { return nil })
	e := &eventstream.Event{ID: "x", Topic: "orders", Data: json.RawMessage(`[1]`)}
	err := h(context.Background(), e)
	var de *eventstream.DataDecodeError
	if !errors.As(err, &de) || de.Type != "eventstream_test.order" || de.EventID != "x" {
		t.Fatalf("err = %v, want a *DataDecodeError for eventstream_test.order", err)
	}
	var je *json.UnmarshalTypeError
	if !errors.As(err, &je) {
		t.Errorf("err = %v, want it to wrap encoding/json's error", err)
	}
}

func TestHandleNil(t *testing.T) {
	b := quietBus(t, eventstream.DefaultConfig())
	defer b.Close()
	var h func(context.Context, *eventstream.Event, order) error
	if _, err := b.On("orders", eventstream.Handle(h)); !errors.Is(err, eventstream.ErrNilHandler) {
		t.Errorf("On(Handle(nil)) = %v, want ErrNilHandler", err)
	}
}
