// Command basic is the original README's memory-mode example, as written,
// followed by its statistics block.
package main

import (
	"context"
	"fmt"
	"log"

	"libx.net/eventstream"
)

func main() {
	// 创建内存模式配置
	config := eventstream.DefaultConfig()

	// 创建EventBus
	bus, err := eventstream.New(config)
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	// 订阅事件
	subscription, err := bus.On("user.registered", func(ctx context.Context, event *eventstream.Event) error {
		fmt.Printf("用户注册: %v\n", event.Data)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// 发布事件
	ctx := context.Background()
	err = bus.Emit(ctx, "user.registered", map[string]interface{}{
		"user_id": "12345",
		"email":   "user@example.com",
	})
	if err != nil {
		log.Fatal(err)
	}

	// 取消订阅 (Off lets the subscription finish what it had accepted)
	bus.Off(subscription)

	// 统计信息: read from the bus's own OpenTelemetry metrics and spans.
	if memBus, ok := bus.(eventstream.MemoryEventBus); ok {
		stats := memBus.GetStats()
		fmt.Printf("统计信息: emitted=%d delivered=%d succeeded=%d failed=%d\n",
			stats.Emitted, stats.Delivered, stats.Succeeded, stats.Failed)
		for _, h := range memBus.GetHistory(10) {
			fmt.Printf("历史: %-7s %s event=%s status=%s trace=%s\n", h.Operation, h.Topic, h.EventID, h.Status, h.TraceID)
		}
	}
}
