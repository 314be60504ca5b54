// Command multiple_consumers shows consumer groups: one Emit reaches the
// notification, points and analytics services once each, and the two
// members of the notification group share its events.
//
//	cd examples && go run ./memory/multiple_consumers
package main

import (
	"context"
	"fmt"
	"log"
	"sync"

	"libx.net/eventstream"
)

func main() {
	bus, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}

	var mu sync.Mutex
	handled := map[string]int{}
	service := func(name string) eventstream.EventHandler {
		return func(ctx context.Context, e *eventstream.Event) error {
			var user struct {
				UserID string `json:"user_id"`
			}
			if err := e.Unmarshal(&user); err != nil {
				return eventstream.Permanent(err)
			}
			mu.Lock()
			handled[name]++
			mu.Unlock()
			return nil
		}
	}

	// Two members of one group share its events; each other group gets all.
	bus.On("user.registered", service("notification-a"), eventstream.WithConsumerGroup("notification-service"))
	bus.On("user.registered", service("notification-b"), eventstream.WithConsumerGroup("notification-service"))
	bus.On("user.registered", service("points"), eventstream.WithConsumerGroup("points-service"))
	bus.On("user.registered", service("analytics"), eventstream.WithConsumerGroup("analytics-service"), eventstream.WithConcurrency(4))

	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := bus.Emit(ctx, "user.registered", map[string]any{"user_id": fmt.Sprint(i)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := bus.Close(); err != nil { // drains every group
		log.Fatal(err)
	}
	fmt.Printf("notification service: %d (member a %d + member b %d)\n",
		handled["notification-a"]+handled["notification-b"], handled["notification-a"], handled["notification-b"])
	fmt.Printf("points service:       %d\n", handled["points"])
	fmt.Printf("analytics service:    %d\n", handled["analytics"])
}
