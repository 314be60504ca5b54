package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"libx.net/eventstream"
)

// An order dead-lettered while the card service was down is put back once
// it is up again: same id, a replay count of 1.
func ExampleReplay() {
	ctx := context.Background()
	bus, _ := eventstream.New(nil, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	defer bus.Close()
	var down atomic.Bool
	down.Store(true)
	handled := make(chan string, 1)
	_, _ = bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		if down.Load() {
			return eventstream.Permanent(errors.New("card service down"))
		}
		handled <- fmt.Sprintf("%v handled, replay %s", e.Data, e.Header(eventstream.HeaderReplayCount))
		return nil
	}, eventstream.WithConsumerGroup("billing"))
	_ = bus.Emit(ctx, "orders", "order-42")

	var dls []eventstream.DeadLetter
	for len(dls) == 0 {
		time.Sleep(time.Millisecond)
		dls, _ = eventstream.ListDeadLetters(ctx, bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0)
	}
	fmt.Printf("dead letter of %s: %s after %d attempt(s)\n", dls[0].Group, dls[0].Reason, dls[0].Attempts)

	down.Store(false)
	res, err := eventstream.Replay(ctx, bus, "orders.dlq", eventstream.DeadLetterFilter{Topic: "orders", Group: "billing"})
	fmt.Printf("replayed %d, skipped %d, failed %d, err %v\n", res.Replayed, res.Skipped, res.Failed, err)
	fmt.Println(<-handled)
	// Output:
	// dead letter of billing: card service down after 1 attempt(s)
	// replayed 1, skipped 0, failed 0, err <nil>
	// order-42 handled, replay 1
}
