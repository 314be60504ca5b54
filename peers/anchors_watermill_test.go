package peers_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream"
)

// The instrumented memory anchors: the bus with SDK providers against
// watermill's Router on its GoChannel with the tracing watermill-opentelemetry
// adds (a producer span per Publish whose context travels in the message's
// metadata, a consumer span per handler call, its error on the span), on
// the same SDK set-up:
//
//	go test -run '^$' -bench 'AnchorMemoryBusInstrumented|AnchorWatermillRouterOtel' -benchtime 200000x -count 3
//
// watermill-opentelemetry is not among the modules available to this
// project, so its two pieces are written out below as it builds them.

// BenchmarkAnchorMemoryBusInstrumented: DefaultConfig() with SDK providers
// (AlwaysSample, batching to a discarding exporter; a manual metric reader).
func BenchmarkAnchorMemoryBusInstrumented(b *testing.B) {
	tp, mp := anchorProviders(b)
	benchMemoryBus(b, eventstream.WithTracerProvider(tp), eventstream.WithMeterProvider(mp))
}

// BenchmarkAnchorWatermillRouterOtel: one Router handler on a GoChannel,
// traced as watermill-opentelemetry traces it, on the same providers.
func BenchmarkAnchorWatermillRouterOtel(b *testing.B) {
	tp, _ := anchorProviders(b)
	tracer := tp.Tracer("github.com/voi-oss/watermill-opentelemetry")
	prop := propagation.TraceContext{}
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	pub := &tracedPublisher{Publisher: ps, tracer: tracer, prop: prop}
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	router.AddMiddleware(traceHandler(tracer, prop))
	done := make(chan struct{})
	var got atomic.Int64
	target := int64(b.N)
	router.AddConsumerHandler("bench", "bench", ps, func(*message.Message) error {
		if got.Add(1) == target {
			close(done)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- router.Run(ctx) }()
	<-router.Running()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			b.Error(err)
		}
		if err := ps.Close(); err != nil {
			b.Error(err)
		}
	}()
	b.ReportAllocs()
	resetTimer(b)
	for i := 0; i < b.N; i++ {
		if err := pub.Publish("bench", message.NewMessage(watermill.NewUUID(), benchBytes)); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	reportRate(b)
}

// tracedPublisher is watermill-opentelemetry's publisher decorator: a
// producer span per Publish, its context injected into each message.
type tracedPublisher struct {
	message.Publisher
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

func (p *tracedPublisher) Publish(topic string, msgs ...*message.Message) error {
	ctx, span := p.tracer.Start(context.Background(), "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(semconv.MessagingDestinationName(topic), semconv.MessagingOperationTypeSend))
	defer span.End()
	for _, m := range msgs {
		p.prop.Inject(ctx, propagation.MapCarrier(m.Metadata))
	}
	err := p.Publisher.Publish(topic, msgs...)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// traceHandler is watermill-opentelemetry's Trace middleware: a consumer
// span per handler call, child of the context the message carries.
func traceHandler(tracer trace.Tracer, prop propagation.TextMapPropagator) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := prop.Extract(msg.Context(), propagation.MapCarrier(msg.Metadata))
			ctx, span := tracer.Start(ctx, message.HandlerNameFromCtx(msg.Context()), trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(semconv.MessagingDestinationName(message.SubscribeTopicFromCtx(msg.Context())),
					semconv.MessagingOperationTypeProcess))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return out, err
		}
	}
}
