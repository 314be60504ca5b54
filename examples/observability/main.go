// Command observability runs an order flow on the bus with everything
// watched: traces to Jaeger over OTLP, metrics on a Prometheus endpoint
// (OpenMetrics, with exemplars), slog lines with trace ids, the
// introspection page at /debug/eventstream/, and a custom tenant middleware.
//
//	go run ./examples/observability                       # memory mode
//	go run ./examples/observability -brokers 127.0.0.1:9092  # Kafka mode
//
// Then open http://127.0.0.1:9464/debug/eventstream/ and, with Jaeger
// running, http://127.0.0.1:16686. Every 25th order is a poison order that
// its handler refuses: it is retried, then dead-lettered, in one trace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/examples/otelsetup"
)

func main() {
	brokers := flag.String("brokers", os.Getenv("EVENTSTREAM_KAFKA_BROKERS"), "Kafka brokers, comma-separated; empty: memory mode")
	metricsAddr := flag.String("metrics", "127.0.0.1:9464", "address of /metrics and /debug/eventstream/")
	rate := flag.Int("rate", 20, "orders per second")
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, *brokers, *metricsAddr, *rate); err != nil {
		log.Fatal(err)
	}
}

var errOutOfStock = errors.New("item out of stock")

func run(ctx context.Context, brokers, metricsAddr string, rate int) error {
	obs, err := otelsetup.Start(ctx, "order-service", metricsAddr)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = obs.Shutdown(sctx)
	}()
	tenant, err := otelsetup.NewTenant(obs.MeterProvider, obs.Logger)
	if err != nil {
		return err
	}

	cfg := eventstream.DefaultConfig()
	if brokers != "" {
		cfg = eventstream.DefaultDistributedConfig(strings.Split(brokers, ","))
	}
	bus, err := eventstream.New(cfg,
		eventstream.WithTracerProvider(obs.TracerProvider),
		eventstream.WithMeterProvider(obs.MeterProvider),
		eventstream.WithStatsReader(obs.Stats),
		eventstream.WithLogger(obs.Logger),
		eventstream.WithMiddleware(tenant.Middleware),
	)
	if err != nil {
		return err
	}
	defer bus.Close()
	obs.Mux.Handle("/debug/eventstream/", http.StripPrefix("/debug/eventstream", eventstream.DebugHandler(bus)))

	retry := eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: 2, BackoffStrategy: "exponential", InitialDelay: 20 * time.Millisecond, Multiplier: 2,
	})
	type order struct {
		ID     string  `json:"id"`
		Amount float64 `json:"amount"`
		Poison bool    `json:"poison,omitempty"`
	}
	notify := func(ctx context.Context, e *eventstream.Event) error {
		var o order
		if err := e.Unmarshal(&o); err != nil {
			return eventstream.Permanent(err)
		}
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond) // an e-mail is sent
		otelsetup.Logger(ctx, obs.Logger).DebugContext(ctx, "confirmation sent", "order", o.ID)
		return nil
	}
	points := func(ctx context.Context, e *eventstream.Event) error {
		var o order
		if err := e.Unmarshal(&o); err != nil {
			return eventstream.Permanent(err)
		}
		if o.Poison {
			return fmt.Errorf("grant points for %s: %w", o.ID, errOutOfStock)
		}
		return nil
	}
	audit := func(ctx context.Context, e *eventstream.Event) error {
		otelsetup.Logger(ctx, obs.Logger).WarnContext(ctx, "dead letter received",
			"original_topic", e.Header(eventstream.HeaderDeadLetterTopic),
			"reason", e.Header(eventstream.HeaderDeadLetterReason),
			"attempts", e.Header(eventstream.HeaderDeadLetterAttempts))
		return nil
	}
	for _, sub := range []struct {
		topic, group string
		h            eventstream.EventHandler
	}{
		{"order.created", "notification-service", notify},
		{"order.created", "points-service", points},
		{"order.created.dlq", "audit-service", audit},
	} {
		if _, err := bus.On(sub.topic, sub.h, eventstream.WithConsumerGroup(sub.group), eventstream.WithConcurrency(4), retry); err != nil {
			return err
		}
	}

	obs.Logger.Info("emitting orders", "rate", rate, "metrics", "http://"+metricsAddr+"/metrics",
		"debug", "http://"+metricsAddr+"/debug/eventstream/")
	tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	defer tick.Stop()
	tenants := []string{"acme", "globex", "initech"}
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		o := order{ID: fmt.Sprintf("o-%d", n), Amount: float64(rand.IntN(10000)) / 100, Poison: n%25 == 0}
		ectx := otelsetup.WithTenant(ctx, tenants[n%len(tenants)])
		ectx = eventstream.ContextWithKey(ectx, o.ID)
		if err := bus.Emit(ectx, "order.created", o); err != nil && ctx.Err() == nil {
			obs.Logger.ErrorContext(ectx, "emit failed", "error", err)
		}
	}
}
