// Command basic is the original README's memory-mode example: subscribe,
// emit, unsubscribe, then print the bus's stats and history.
package main

import (
	"context"
	"fmt"
	"log"

	"libx.net/eventstream"
)

func main() {
	// Memory-mode configuration.
	config := eventstream.DefaultConfig()

	// Create the EventBus.
	bus, err := eventstream.New(config)
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	// Subscribe.
	subscription, err := bus.On("user.registered", func(ctx context.Context, event *eventstream.Event) error {
		fmt.Printf("user registered: %v\n", event.Data)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// Publish.
	ctx := context.Background()
	err = bus.Emit(ctx, "user.registered", map[string]interface{}{
		"user_id": "12345",
		"email":   "user@example.com",
	})
	if err != nil {
		log.Fatal(err)
	}

	// Unsubscribe: the event above is handled before Off returns, because
	// Off waits for in-flight handlers and the queue was drained first.
	bus.Off(subscription)

	if memBus, ok := bus.(eventstream.MemoryEventBus); ok {
		stats := memBus.GetStats()
		fmt.Printf("stats: emitted=%d succeeded=%d\n", stats.Emitted, stats.Succeeded)
		for _, h := range memBus.GetHistory(10) {
			fmt.Printf("history: %s %s status=%s trace=%s\n", h.Operation, h.Topic, h.Status, h.TraceID)
		}
	}
}
