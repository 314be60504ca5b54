// Command basic is the smallest EventStream program: an in-process bus, one
// consumer group, one event whose first attempt fails and is retried, and
// then what the bus recorded about it: its recent history and its stats.
//
//	cd examples && go run ./memory/basic
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"libx.net/eventstream"
)

type user struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

func main() {
	// Memory mode: no broker, no collector; history and stats are on. A
	// TracerProvider (the OpenTelemetry SDK's, exporting nowhere here; pass
	// an OTLP exporter to see the traces in Jaeger) makes every operation a
	// span, so the history below shows trace ids. Without one the bus
	// still keeps history and stats, and skips the tracing work.
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	bus, err := eventstream.New(eventstream.DefaultConfig(), eventstream.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	const group = "welcome-email"
	sub, err := bus.On("user.registered", func(ctx context.Context, e *eventstream.Event) error {
		var u user
		if err := e.Unmarshal(&u); err != nil {
			return eventstream.Permanent(err) // retrying cannot fix a bad payload
		}
		// The first attempt fails, to show a retry in the history below.
		if eventstream.Attempt(ctx) == 1 {
			fmt.Printf("handler  group %s, attempt 1: mail server busy, returning an error (the bus retries)\n", group)
			return fmt.Errorf("mail server busy")
		}
		fmt.Printf("handler  group %s, attempt %d: welcome e-mail sent to %s (user %s)\n",
			group, eventstream.Attempt(ctx), u.Email, u.UserID)
		return nil
	}, eventstream.WithConsumerGroup(group))
	if err != nil {
		log.Fatal(err)
	}

	// Printed before Emit: the handler may run before Emit returns.
	u := user{UserID: "12345", Email: "user@example.com"}
	fmt.Printf("emit     user.registered %+v (Emit returns once every group has it queued)\n", u)
	if err := bus.Emit(context.Background(), "user.registered", u); err != nil {
		log.Fatal(err)
	}

	// Off waits for what the subscription accepted, retries included.
	if err := bus.Off(sub); err != nil {
		log.Fatal(err)
	}

	mb, ok := bus.(eventstream.MemoryEventBus)
	if !ok {
		return
	}
	fmt.Println()
	fmt.Println("History: the most recent operations, newest first. A send is one Emit; a")
	fmt.Println("process is one attempt of one consumer group's handler. All carry the trace")
	fmt.Println("id of the Emit, so an event and its retries are one OpenTelemetry trace.")
	for _, h := range mb.GetHistory(10) {
		group, attempt := "-", "-"
		if h.Operation == "process" {
			group, attempt = h.Group, fmt.Sprint(h.Attempt)
		}
		fmt.Printf("  %-7s topic=%s group=%s attempt=%s status=%s took=%v trace=%s",
			h.Operation, h.Topic, group, attempt, h.Status, h.Duration.Round(time.Microsecond), h.TraceID)
		if h.Error != "" {
			fmt.Printf(" error=%q", h.Error)
		}
		fmt.Println()
	}

	s := mb.GetStats()
	fmt.Println()
	fmt.Println("Stats: totals read from the bus's own metrics since it started.")
	fmt.Printf("  emitted       %6d  Emit calls accepted\n", s.Emitted)
	fmt.Printf("  delivered     %6d  events handed to a consumer group\n", s.Delivered)
	fmt.Printf("  succeeded     %6d  handler attempts that returned nil\n", s.Succeeded)
	fmt.Printf("  failed        %6d  handler attempts that returned an error\n", s.Failed)
	fmt.Printf("  retried       %6d  attempts scheduled again after a failure\n", s.Retried)
	fmt.Printf("  dead-lettered %6d  events given up on after the last retry\n", s.DeadLettered)
	fmt.Printf("  p99 %16v  handler time that 99%% of attempts stayed under\n", s.LatencyP99.Round(time.Microsecond))
}
