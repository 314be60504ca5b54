package eventstream_test

import (
	"context"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"libx.net/eventstream"
)

// The memory-mode example of the README, as written.
func Example() {
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

	// 取消订阅
	bus.Off(subscription)
	// Output: 用户注册: map[email:user@example.com user_id:12345]
}

// The README's consumer-group block: one Emit, three services.
func ExampleWithConsumerGroup() {
	bus, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	record := func(service string) eventstream.EventHandler {
		return func(ctx context.Context, e *eventstream.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, service)
			return nil
		}
	}
	sendWelcomeEmail, grantWelcomePoints, recordUserAnalytics := record("notification"), record("points"), record("analytics")
	ctx := context.Background()
	userData := map[string]any{"user_id": "12345"}

	// 同一个事件可以被多个消费者组独立消费
	// 通知服务消费者组
	bus.On("user.registered", sendWelcomeEmail,
		eventstream.WithConsumerGroup("notification-service"))

	// 积分服务消费者组
	bus.On("user.registered", grantWelcomePoints,
		eventstream.WithConsumerGroup("points-service"))

	// 分析服务消费者组
	bus.On("user.registered", recordUserAnalytics,
		eventstream.WithConsumerGroup("analytics-service"))

	// 发布一次事件，三个服务都会收到
	bus.Emit(ctx, "user.registered", userData)

	bus.Close() // drains: every group has handled the event
	sort.Strings(got)
	fmt.Println(got)
	// Output: [analytics notification points]
}

// The README's subscription options and handler blocks: a handler that
// decodes its event, in a group, with concurrency and a retry policy.
func ExampleWithRetryPolicy() {
	bus, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	handleOrder := func(ctx context.Context, event *eventstream.Event) error {
		// 反序列化事件数据
		var order struct {
			OrderID string `json:"order_id"`
		}
		if err := event.Unmarshal(&order); err != nil {
			return err
		}
		if eventstream.Attempt(ctx) < 2 {
			return fmt.Errorf("inventory not ready for %s", order.OrderID)
		}
		fmt.Printf("订单 %s 在第 %d 次尝试时处理成功\n", order.OrderID, eventstream.Attempt(ctx))
		return nil
	}

	// 带重试策略和消费者组的订阅
	subscription, err := bus.On("order.created",
		handleOrder,
		eventstream.WithConsumerGroup("order-service"), // 消费者组名称
		eventstream.WithConcurrency(10),                // 并发处理数量
		eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
			MaxRetries:      3,                      // 最大重试次数
			BackoffStrategy: "exponential",          // 指数退避
			InitialDelay:    100 * time.Millisecond, // 初始延迟
			MaxDelay:        5 * time.Second,        // 最大延迟
			Multiplier:      2.0,                    // 退避乘数
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	_ = subscription
	bus.Emit(context.Background(), "order.created", map[string]any{"order_id": "A-1"})
	bus.Close()
	// Output: 订单 A-1 在第 2 次尝试时处理成功
}

// The README's statistics block: stats and history are read from the bus's
// own OpenTelemetry metrics and spans.
func ExampleMemoryEventBus() {
	bus, err := eventstream.New(eventstream.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()
	sub, _ := bus.On("user.registered", func(ctx context.Context, e *eventstream.Event) error { return nil })
	for i := 0; i < 3; i++ {
		bus.Emit(context.Background(), "user.registered", map[string]any{"n": i})
	}
	bus.Off(sub) // waits until the three are handled

	if memBus, ok := bus.(eventstream.MemoryEventBus); ok {
		// 获取统计信息
		stats := memBus.GetStats()
		fmt.Printf("emitted=%d delivered=%d succeeded=%d failed=%d\n",
			stats.Emitted, stats.Delivered, stats.Succeeded, stats.Failed)

		// 获取事件历史
		history := memBus.GetHistory(10)
		ops := map[string]int{}
		for _, h := range history {
			ops[h.Operation+" "+h.Topic+" "+h.Status]++
		}
		fmt.Printf("history entries=%d %v\n", len(history), ops)
	}
	// Output:
	// emitted=3 delivered=3 succeeded=3 failed=0
	// history entries=6 map[process user.registered ok:3 send user.registered ok:3]
}

// Keys keep per-key order under concurrency; headers travel with the event.
func ExampleWithKey() {
	bus, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithoutTelemetry())
	if err != nil {
		log.Fatal(err)
	}
	bus.On("account.updated", func(ctx context.Context, e *eventstream.Event) error {
		fmt.Println(e.Key, e.Header("tenant"), e.Data)
		return nil
	}, eventstream.WithConcurrency(8))

	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		bus.Emit(ctx, "account.updated", i,
			eventstream.WithKey("account-7"), eventstream.WithHeaders(map[string]string{"tenant": "acme"}))
	}
	bus.Close()
	// Output:
	// account-7 acme 1
	// account-7 acme 2
	// account-7 acme 3
}

// A handler that receives its own type: the bus decodes the event's data
// once (in memory mode the emitted value is handed over as it is).
func ExampleHandle() {
	type Registered struct {
		UserID string `json:"user_id"`
	}
	bus, _ := eventstream.New(eventstream.DefaultConfig(), eventstream.WithoutTelemetry())
	done := make(chan struct{})
	_, _ = bus.On("user.registered", eventstream.Handle(func(ctx context.Context, e *eventstream.Event, u Registered) error {
		fmt.Println("welcome", u.UserID)
		close(done)
		return nil
	}))
	_ = bus.Emit(context.Background(), "user.registered", Registered{UserID: "12345"})
	<-done
	_ = bus.Close()
	// Output:
	// welcome 12345
}
