package eventstream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Integration tests against a real Apache Kafka cluster, selected by
// EVENTSTREAM_KAFKA_BROKERS (e.g. the address scripts/kafka.sh start
// prints). The crash tests also run on the in-process kfake cluster.

func TestKafkaRealConformance(t *testing.T) {
	eventstreamtest.Run(t, kafkaTransport(eventstreamtest.RealKafkaBrokers(t)))
}

func TestKafkaRealTwoServicesOneTrace(t *testing.T) {
	testTwoServicesOneTrace(t, eventstreamtest.RealKafkaBrokers(t))
}

// Environment of the child consumer process of TestKafkaConsumerKilled.
const (
	childEnv       = "EVENTSTREAM_TEST_CHILD"
	childBrokers   = "EVENTSTREAM_TEST_CHILD_BROKERS"
	childTopic     = "EVENTSTREAM_TEST_CHILD_TOPIC"
	childGroup     = "EVENTSTREAM_TEST_CHILD_GROUP"
	childHandledTo = "EVENTSTREAM_TEST_CHILD_FILE"
)

// TestKafkaChildConsumer is not a test: it is the body of the child process
// that TestKafkaConsumerKilled starts and kills with SIGKILL. It joins the
// group, says READY, and appends each handled event id to a file before
// its handler returns (so before the offset can be committed).
func TestKafkaChildConsumer(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("child process of TestKafkaConsumerKilled")
	}
	f, err := os.OpenFile(os.Getenv(childHandledTo), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	b, err := eventstream.New(kafkaTestConfig(strings.Split(os.Getenv(childBrokers), ",")), eventstream.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(os.Getenv(childTopic), func(ctx context.Context, e *eventstream.Event) error {
		time.Sleep(time.Millisecond) // a handler that takes a moment: work in flight when killed
		_, err := f.WriteString(e.ID + "\n")
		return err
	}, eventstream.WithConsumerGroup(os.Getenv(childGroup)), eventstream.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY")
	select {} // until killed
}

// A consumer process killed with SIGKILL mid-stream: its partitions move to
// the group's other member (after the session timeout) and no event is
// lost; events it handled but had not committed are delivered again.
func TestKafkaConsumerKilled(t *testing.T) {
	testConsumerKilled(t, eventstreamtest.KafkaCluster(t))
}

func TestKafkaRealConsumerKilled(t *testing.T) {
	testConsumerKilled(t, eventstreamtest.RealKafkaBrokers(t))
}

func testConsumerKilled(t *testing.T, brokers []string) {
	topic := eventstreamtest.Topic(t)
	group := "killed-" + topic
	handledFile := filepath.Join(t.TempDir(), "child-handled")
	createTopic(t, brokers, topic, 6)
	l := newLedger()

	child := exec.Command(os.Args[0], "-test.run=^TestKafkaChildConsumer$", "-test.count=1")
	child.Env = append(os.Environ(), childEnv+"=1", childBrokers+"="+strings.Join(brokers, ","),
		childTopic+"="+topic, childGroup+"="+group, childHandledTo+"="+handledFile)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- nil
				return
			}
		}
		ready <- errors.New("child exited before READY")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child never joined its group")
	}

	parent := newKafkaBus(t, brokers, nil, eventstream.WithEmitMiddleware(captureIDs))
	if _, err := parent.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		l.handle(e.ID)
		return nil
	}, eventstream.WithConsumerGroup(group), eventstream.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}

	const total = 3000
	var emitted atomic.Int64
	emitDone := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			var id string
			if err := emitWithID(parent, context.Background(), topic, i, &id, eventstream.WithKey("key-"+strconv.Itoa(i%64))); err != nil {
				emitDone <- err
				return
			}
			l.emit(id)
			emitted.Add(1)
			time.Sleep(time.Millisecond)
		}
		emitDone <- nil
	}()

	// Kill the child once it has handled a good share of its partitions.
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, _ := os.ReadFile(handledFile)
		if strings.Count(string(data), "\n") >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child handled too little")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the child after %d of %d emits", emitted.Load(), total)
	if err := <-emitDone; err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(handledFile)
	lines := strings.Split(string(data), "\n")
	for _, id := range lines[:len(lines)-1] { // the last may be cut short
		l.handle(id)
	}
	t.Logf("the child handled %d events before SIGKILL", len(lines)-1)
	l.waitAll(t, 60*time.Second, nil)
}

// The broker is killed with SIGKILL mid-stream and restarted: producer and
// consumer recover, and every event the broker acknowledged is handled.
// Needs EVENTSTREAM_KAFKA_SCRIPT naming scripts/kafka.sh (or a script with
// the same kill9 and restart commands) for the cluster in
// EVENTSTREAM_KAFKA_BROKERS.
func TestKafkaRealBrokerRestart(t *testing.T) {
	brokers := eventstreamtest.RealKafkaBrokers(t)
	script := os.Getenv("EVENTSTREAM_KAFKA_SCRIPT")
	if script == "" {
		t.Skip("EVENTSTREAM_KAFKA_SCRIPT is not set: it must name the script that kill9s and restarts the broker of " +
			eventstreamtest.BrokersEnv + " (scripts/kafka.sh)")
	}
	run := func(cmd string) {
		out, err := exec.Command(script, cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", script, cmd, err, out)
		}
	}
	topic := eventstreamtest.Topic(t)
	l := newLedger()
	b := newKafkaBus(t, brokers, nil, eventstream.WithEmitMiddleware(captureIDs))
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		l.handle(e.ID)
		return nil
	}, eventstream.WithConsumerGroup("restart-"+topic)); err != nil {
		t.Fatal(err)
	}
	var acked, failed atomic.Int64
	stop := make(chan struct{})
	emitDone := make(chan struct{})
	go func() {
		defer close(emitDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var id string
			err := emitWithID(b, ctx, topic, i, &id)
			cancel()
			if err != nil {
				failed.Add(1) // not acknowledged: may or may not arrive
				continue
			}
			l.emit(id)
			acked.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	t.Logf("killing the broker after %d acknowledged emits", acked.Load())
	run("kill9")
	time.Sleep(2 * time.Second)
	run("restart")
	t.Logf("broker restarted; %d acknowledged, %d failed so far", acked.Load(), failed.Load())
	time.Sleep(5 * time.Second)
	close(stop)
	<-emitDone
	if acked.Load() == 0 {
		t.Fatal("nothing was acknowledged")
	}
	t.Logf("%d emits acknowledged, %d failed while the broker was down", acked.Load(), failed.Load())
	l.waitAll(t, 120*time.Second, nil)
}

// Two buses are two services: a trace started by one's Emit continues in
// the other's handler, with the same span names and attributes as memory
// mode plus the Kafka ones; both record metrics, history and stats.
func TestKafkaTwoServicesOneTrace(t *testing.T) {
	testTwoServicesOneTrace(t, eventstreamtest.KafkaCluster(t))
}

func testTwoServicesOneTrace(t *testing.T, brokers []string) {
	topic := eventstreamtest.Topic(t)
	type service struct {
		bus eventstream.EventBus
		sr  *tracetest.SpanRecorder
		rd  *sdkmetric.ManualReader
		tp  *sdktrace.TracerProvider
	}
	newService := func(name string) service {
		sr := tracetest.NewSpanRecorder()
		rd := sdkmetric.NewManualReader()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		b := newKafkaBus(t, brokers, func(c *eventstream.Config) { c.Kafka.ClientID = name },
			eventstream.WithTracerProvider(tp), eventstream.WithMeterProvider(mp))
		return service{b, sr, rd, tp}
	}
	orders, points := newService("orders"), newService("points")
	got := newEvents()
	if _, err := points.bus.On(topic, got.handler, eventstream.WithConsumerGroup("points-"+topic)); err != nil {
		t.Fatal(err)
	}
	parentCtx, parent := orders.tp.Tracer("orders").Start(context.Background(), "POST /orders")
	if err := orders.bus.Emit(parentCtx, topic, map[string]any{"order": 1}, eventstream.WithKey("order-1")); err != nil {
		t.Fatal(err)
	}
	parent.End()
	e := got.wait(t, 1)[0]
	waitSpans(t, points.sr, "process "+topic, 1)
	send := spansNamed(orders.sr, "send "+topic)[0]
	proc := spansNamed(points.sr, "process "+topic)[0]
	if proc.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Fatal("the handler's span is not in the emitter's trace")
	}
	if proc.Parent().SpanID() != send.SpanContext().SpanID() {
		t.Error("the process span's parent is not the send span")
	}
	if proc.SpanKind() != trace.SpanKindConsumer || send.SpanKind() != trace.SpanKindProducer {
		t.Error("span kinds")
	}
	wantProc := map[string]string{
		"messaging.system":                   "kafka",
		"messaging.operation.type":           "process",
		"messaging.operation.name":           "process",
		"messaging.destination.name":         topic,
		"messaging.consumer.group.name":      "points-" + topic,
		"messaging.message.id":               e.ID,
		"messaging.destination.partition.id": itoa(int64(e.Record.Partition)),
		"messaging.kafka.offset":             itoa(e.Record.Offset),
		"messaging.kafka.message.key":        "order-1",
		"eventstream.attempt":                "1",
	}
	for k, v := range wantProc {
		if got := attr(proc, k); got != v {
			t.Errorf("process span %s = %q, want %q", k, got, v)
		}
	}
	// Metrics: the same four messaging metrics as memory mode, and the lag
	// gauge per group/topic/partition.
	sent := collectMetrics(t, orders.rd)
	if _, ok := sent["messaging.client.sent.messages"]; !ok {
		t.Error("no messaging.client.sent.messages on the emitting side")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := collectMetrics(t, points.rd)
		_, consumed := m["messaging.client.consumed.messages"]
		_, processed := m["messaging.process.duration"]
		lag, hasLag := m["eventstream.consumer.lag"]
		if consumed && processed && hasLag && lagPoints(lag) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume-side metrics missing: consumed %v processed %v lag %v", consumed, processed, hasLag)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
