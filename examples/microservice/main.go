// Command microservice is three services on one Kafka cluster, each its own
// process: order-service emits order.created; notification-service and
// points-service consume it in their own consumer groups. Each exports
// traces over OTLP (to Jaeger), serves /metrics (OpenMetrics, with
// exemplars) and /debug/eventstream/, logs with trace ids, and runs a custom
// tenant middleware, so one order is one trace across three processes.
// From the examples directory:
//
//	scripts/kafka.sh start && scripts/jaeger.sh start    # from the repository root
//	export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318
//	go run ./microservice -service notification-service &
//	go run ./microservice -service points-service &
//	go run ./microservice -service order-service
//
// With -service all, the three run in one process (service name "shop"),
// in memory mode unless brokers are given — the quickest way to see it all,
// needing nothing else running:
//
//	go run ./microservice -service all
//
// Brokers come from -brokers or EVENTSTREAM_KAFKA_BROKERS (default
// 127.0.0.1:9092 for the separate services). Traces are exported only when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set;
// without it they still feed the debug page. At startup each process logs
// the URLs of its /metrics and debug page. Every 25th
// order is poison: points-service refuses it, retries, and dead-letters it
// to order.created.dlq, where order-service audits it — all in the order's
// trace. points-service announces the points it granted (points.granted,
// emitted with its handler's context, so the event names the order as its
// cause), and notification-service mails them: the debug page's event view
// of an order shows that chain.
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
	"libx.net/eventstream/history"
)

type order struct {
	ID     string  `json:"id"`
	Amount float64 `json:"amount"`
	Poison bool    `json:"poison,omitempty"`
}

type points struct {
	Order  string `json:"order"`
	Points int    `json:"points"`
}

// debugPath is where the bus's debug page is mounted.
const debugPath = "/debug/eventstream/"

var metricsPorts = map[string]string{
	"all":                  "127.0.0.1:9464",
	"order-service":        "127.0.0.1:9464",
	"notification-service": "127.0.0.1:9465",
	"points-service":       "127.0.0.1:9466",
}

func main() {
	service := flag.String("service", "", "order-service, notification-service, points-service, or all")
	brokers := flag.String("brokers", os.Getenv("EVENTSTREAM_KAFKA_BROKERS"), "Kafka brokers, comma-separated (default 127.0.0.1:9092; with -service all, empty means memory mode)")
	metrics := flag.String("metrics", "", "address of /metrics (default: 9464, 9465, 9466 by service)")
	rate := flag.Int("rate", 20, "orders per second (order-service)")
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	traceURL := flag.String("trace-url", "http://localhost:16686/trace/{id}", "trace viewer link on the debug page, {id} is the trace id (empty: no links)")
	flag.Parse()
	if _, ok := metricsPorts[*service]; !ok {
		log.Fatalf("-service must be one of order-service, notification-service, points-service, all; got %q", *service)
	}
	if *brokers == "" && *service != "all" {
		*brokers = "127.0.0.1:9092"
	}
	if *metrics == "" {
		*metrics = metricsPorts[*service]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var brokerList []string
	if *brokers != "" {
		brokerList = strings.Split(*brokers, ",")
	}
	if err := run(ctx, *service, brokerList, *metrics, *rate, *traceURL); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, service string, brokers []string, metricsAddr string, rate int, traceURL string) error {
	name := service
	if service == "all" {
		name = "shop"
	}
	obs, err := otelsetup.Start(ctx, name, metricsAddr)
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
	if len(brokers) > 0 {
		cfg = eventstream.DefaultDistributedConfig(brokers)
	}
	bus, err := eventstream.New(cfg,
		eventstream.WithTracerProvider(obs.TracerProvider),
		eventstream.WithMeterProvider(obs.MeterProvider),
		eventstream.WithLogger(obs.Logger),
		eventstream.WithMiddleware(tenant.Middleware),
	)
	if err != nil {
		return err
	}
	defer func() {
		if err := bus.Close(); err != nil {
			obs.Logger.Error("close", "error", err)
		}
	}()
	obs.Mux.Handle(debugPath, http.StripPrefix(strings.TrimSuffix(debugPath, "/"), eventstream.DebugHandler(bus, debugOptions(traceURL)...)))
	if obs.BaseURL != "" {
		obs.Logger.Info("serving", "metrics", obs.BaseURL+"/metrics", "debug_page", obs.BaseURL+debugPath)
	}
	if obs.TraceEndpoint != "" {
		obs.Logger.Info("exporting traces over OTLP", "endpoint", obs.TraceEndpoint)
	} else {
		obs.Logger.Info("not exporting traces: set OTEL_EXPORTER_OTLP_ENDPOINT to send them to a collector")
	}
	retry := eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: 2, BackoffStrategy: "exponential", InitialDelay: 20 * time.Millisecond, Multiplier: 2,
	})

	roles := []string{service}
	if service == "all" {
		roles = []string{"notification-service", "points-service", "order-service"}
	}
	for _, role := range roles {
		if err := subscribe(bus, obs, role, retry); err != nil {
			return err
		}
	}
	if roles[len(roles)-1] == "order-service" {
		return emitOrders(ctx, bus, obs, rate)
	}
	obs.Logger.Info("consuming")
	<-ctx.Done()
	return nil
}

// subscribe makes the subscriptions of one service.
func subscribe(bus eventstream.EventBus, obs *otelsetup.Setup, service string, retry eventstream.SubscribeOption) error {
	var err error
	switch service {
	case "notification-service":
		_, err = bus.On("order.created", func(ctx context.Context, e *eventstream.Event) error {
			var o order
			if err := e.Unmarshal(&o); err != nil {
				return eventstream.Permanent(err)
			}
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond) // an e-mail is sent
			otelsetup.Logger(ctx, obs.Logger).DebugContext(ctx, "confirmation sent", "order", o.ID)
			return nil
		}, eventstream.WithConsumerGroup(service), eventstream.WithConcurrency(4), retry,
			// A mail server outage pauses the group (eventstream.circuit.state)
			// instead of dead-lettering every confirmation.
			eventstream.WithCircuitBreaker(eventstream.CircuitBreaker{ConsecutiveFailures: 10, CoolDown: 10 * time.Second}))
		if err != nil {
			return err
		}
		_, err = bus.On("points.granted", func(ctx context.Context, e *eventstream.Event) error {
			var p points
			if err := e.Unmarshal(&p); err != nil {
				return eventstream.Permanent(err)
			}
			if e.Redelivery == 0 && rand.IntN(20) == 0 {
				// The mail provider throttles now and then: not a failure,
				// the event is handed back and mailed a moment later
				// (eventstream.requeues, the span's eventstream.redelivery).
				return eventstream.RequeueAfter(200*time.Millisecond, "mail provider throttled")
			}
			otelsetup.Logger(ctx, obs.Logger).DebugContext(ctx, "points mailed", "order", p.Order,
				"points", p.Points, "correlation_id", e.CorrelationID)
			return nil
		}, eventstream.WithConsumerGroup(service), retry)
	case "points-service":
		_, err = bus.On("order.created", func(ctx context.Context, e *eventstream.Event) error {
			var o order
			if err := e.Unmarshal(&o); err != nil {
				return eventstream.Permanent(err)
			}
			if o.Poison {
				return fmt.Errorf("grant points for %s: %w", o.ID, errOutOfStock)
			}
			// Emitted with the handler's ctx: caused by the order, in its
			// chain and its trace.
			return bus.Emit(ctx, "points.granted", points{Order: o.ID, Points: int(o.Amount)}, eventstream.WithKey(o.ID))
		}, eventstream.WithConsumerGroup(service), eventstream.WithConcurrency(4), retry)
	case "order-service":
		_, err = bus.On("order.created.dlq", func(ctx context.Context, e *eventstream.Event) error {
			otelsetup.Logger(ctx, obs.Logger).WarnContext(ctx, "order failed downstream",
				"group", e.Header(eventstream.HeaderDeadLetterGroup),
				"reason", e.Header(eventstream.HeaderDeadLetterReason),
				"attempts", e.Header(eventstream.HeaderDeadLetterAttempts))
			return nil
		}, eventstream.WithConsumerGroup("order-service-audit"))
	}
	return err
}

var errOutOfStock = errors.New("item out of stock")

func emitOrders(ctx context.Context, bus eventstream.EventBus, obs *otelsetup.Setup, rate int) error {
	every := time.Second / time.Duration(max(rate, 1))
	obs.Logger.Info("emitting orders", "per_second", rate, "every", every)
	tick := time.NewTicker(every)
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
		if err := bus.Emit(ectx, "order.created", o, eventstream.WithKey(o.ID)); err != nil && ctx.Err() == nil {
			obs.Logger.ErrorContext(ectx, "emit failed", "error", err)
		}
	}
}

// debugOptions links the debug page's trace ids to a trace viewer (Jaeger's
// UI by default).
func debugOptions(traceURL string) []history.HandlerOption {
	if traceURL == "" {
		return nil
	}
	return []history.HandlerOption{history.WithTraceURL(traceURL)}
}
