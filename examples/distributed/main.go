// Command distributed is the README's distributed-mode example in one
// process: the same handler code as memory mode, over Kafka.
//
//	scripts/kafka.sh start                    # from the repository root; prints 127.0.0.1:9092
//	cd examples && go run ./distributed       # or -brokers host:port, or EVENTSTREAM_KAFKA_BROKERS
//
// It subscribes two consumer groups (every group sees every event) and a
// handler that fails for one order so that it is retried and dead-lettered,
// emits a stream of orders keyed by customer (a customer's orders stay in
// order), emits a batch asynchronously, then prints the bus's stats and
// recent history and closes, which drains what was emitted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"libx.net/eventstream"
)

type order struct {
	ID       string  `json:"id"`
	Customer string  `json:"customer"`
	Amount   float64 `json:"amount"`
}

func main() {
	def := os.Getenv("EVENTSTREAM_KAFKA_BROKERS")
	if def == "" {
		def = "127.0.0.1:9092"
	}
	brokers := flag.String("brokers", def, "Kafka seed brokers, comma-separated (default $EVENTSTREAM_KAFKA_BROKERS or 127.0.0.1:9092)")
	n := flag.Int("orders", 20, "orders to emit")
	flag.Parse()

	config := eventstream.DefaultDistributedConfig(strings.Split(*brokers, ","))
	config.Kafka.ClientID = "distributed-example"
	bus, err := eventstream.New(config)
	if err != nil {
		log.Fatal(err)
	}

	// Topics and dead-letter topics are created on first use; run names
	// keep reruns apart.
	run := time.Now().Format("150405")
	topic := "example.order.created." + run
	var shipped, emailed atomic.Int32
	var wg sync.WaitGroup
	wg.Add(2 * *n)

	// Two consumer groups: each receives every order.
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		var o order
		if err := e.Unmarshal(&o); err != nil {
			return eventstream.Permanent(err) // malformed: straight to the dead-letter topic
		}
		if o.ID == "o-7" && eventstream.Attempt(ctx) < 3 {
			return errors.New("warehouse busy") // retried with backoff, then succeeds
		}
		defer wg.Done()
		shipped.Add(1)
		fmt.Printf("shipping  %s for %s (partition %d, offset %d, attempt %d)\n",
			o.ID, o.Customer, e.Record.Partition, e.Record.Offset, eventstream.Attempt(ctx))
		return nil
	}, eventstream.WithConsumerGroup("shipping-"+run), eventstream.WithConcurrency(4)); err != nil {
		log.Fatal(err)
	}
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		var o order
		if e.Unmarshal(&o) != nil {
			return nil // not an order: nothing to e-mail
		}
		defer wg.Done()
		emailed.Add(1)
		return nil
	}, eventstream.WithConsumerGroup("email-"+run)); err != nil {
		log.Fatal(err)
	}
	// The dead-letter topic is an ordinary topic.
	if _, err := bus.On(topic+".dlq", func(ctx context.Context, e *eventstream.Event) error {
		fmt.Printf("dead letter: %s (reason %q after %s attempts)\n", e.Raw,
			e.Header(eventstream.HeaderDeadLetterReason), e.Header(eventstream.HeaderDeadLetterAttempts))
		return nil
	}); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	customers := []string{"alice", "bob", "carol"}
	for i := 1; i <= *n/2; i++ {
		o := order{ID: fmt.Sprintf("o-%d", i), Customer: customers[i%3], Amount: float64(i) * 9.5}
		// The key keeps one customer's orders in order, on one partition.
		if err := bus.Emit(ctx, topic, o, eventstream.WithKey(o.Customer)); err != nil {
			log.Fatal(err) // returned once the broker acknowledged the event
		}
	}
	// The high-throughput way: Emit returns once the producer has the
	// record; the callback hears the broker's answer.
	var acked sync.WaitGroup
	for i := *n/2 + 1; i <= *n; i++ {
		o := order{ID: fmt.Sprintf("o-%d", i), Customer: customers[i%3], Amount: float64(i) * 9.5}
		acked.Add(1)
		done := func(err error) {
			if err != nil {
				log.Printf("order %s not written: %v", o.ID, err)
			}
			acked.Done()
		}
		if err := bus.Emit(ctx, topic, o, eventstream.WithKey(o.Customer), eventstream.WithAsync(done)); err != nil {
			log.Fatal(err)
		}
	}
	acked.Wait()
	// A payload that is not an order: dead-lettered without retries.
	if err := bus.Emit(ctx, topic, "not an order"); err != nil {
		log.Fatal(err)
	}
	wg.Wait()
	fmt.Printf("shipped %d, e-mailed %d\n", shipped.Load(), emailed.Load())

	if mb, ok := bus.(eventstream.MemoryEventBus); ok {
		time.Sleep(200 * time.Millisecond) // let the dead letter land
		s := mb.GetStats()
		fmt.Printf("stats: emitted=%d delivered=%d succeeded=%d failed=%d retried=%d dead-lettered=%d p99=%v\n",
			s.Emitted, s.Delivered, s.Succeeded, s.Failed, s.Retried, s.DeadLettered, s.LatencyP99)
		for _, h := range mb.GetHistory(5) {
			fmt.Printf("history: %-7s %-40s %-6s trace %s\n", h.Operation, h.Topic, h.Status, h.TraceID)
		}
	}
	// Close stops fetching, finishes the handlers, commits, leaves the
	// groups and flushes the producer.
	if err := bus.Close(); err != nil {
		log.Fatal(err)
	}
}
