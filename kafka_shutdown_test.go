package eventstream_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Close and asynchronous Emits when the network or the broker is gone.

// closeMargin is what Close may take beyond ShutdownTimeout: the final
// commit, leave and flush get at least a second (see the README), and
// franz-go closes a fetch session within another.
const closeMargin = 3 * time.Second

// Close through a black-holed network returns within ShutdownTimeout and a
// small margin, counts what it left, runs every asynchronous callback, and
// loses nothing: once the network is back, the group's next member gets
// every event that was not handled.
func TestKafkaCloseNetworkBlackHoled(t *testing.T) {
	testCloseBlackHoled(t, eventstreamtest.KafkaCluster(t), 3*time.Second)
}

func TestKafkaRealCloseNetworkBlackHoled(t *testing.T) {
	testCloseBlackHoled(t, eventstreamtest.RealKafkaBrokers(t), 10*time.Second)
}

func testCloseBlackHoled(t *testing.T, brokers []string, timeout time.Duration) {
	topic := eventstreamtest.Topic(t)
	group := eventstream.WithConsumerGroup("blackhole-" + topic)
	createTopic(t, brokers, topic, 3)
	fn := newFaultNet(t)
	l := newLedger()

	cfg := kafkaTestConfig(brokers)
	cfg.ShutdownTimeout = timeout
	cfg.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
	cfg.Kafka.ClientOptions = []kgo.Opt{fn.Option()}
	b, err := eventstream.New(cfg, eventstream.WithEmitMiddleware(captureIDs),
		eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	// Every event is in the topic before the member joins, so that its
	// first fetch takes them all: each is accepted when the network goes.
	const total = 100
	for i := range total {
		var id string
		if err := emitWithID(b, context.Background(), topic, i, &id); err != nil {
			t.Fatal(err)
		}
		l.emit(id)
	}
	var handled atomic.Int64
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		// Slow enough that the events outlast ShutdownTimeout.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(timeout / 20):
		}
		l.handle(e.ID)
		handled.Add(1)
		return nil
	}, group); err != nil {
		t.Fatal(err)
	}
	for handled.Load() < 5 {
		time.Sleep(10 * time.Millisecond)
	}

	fn.BlackHole()
	const async = 20
	var callbacks atomic.Int64
	for i := range async {
		if err := b.Emit(context.Background(), topic, i, eventstream.WithAsync(func(error) { callbacks.Add(1) })); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	err = b.Close()
	took := time.Since(start)
	ran := callbacks.Load()
	t.Logf("Close with the network black-holed took %v (ShutdownTimeout %v); %d of %d handled; Close: %v",
		took.Round(10*time.Millisecond), timeout, handled.Load(), total, err)
	if took > timeout+closeMargin {
		t.Errorf("Close took %v, want at most ShutdownTimeout %v + %v", took, timeout, closeMargin)
	}
	var se *eventstream.ShutdownError
	if !errors.As(err, &se) || se.Unhandled == 0 {
		t.Errorf("Close = %v, want a ShutdownError counting the events left", err)
	}
	if ran != async {
		t.Errorf("%d of %d asynchronous callbacks had run when Close returned", ran, async)
	}

	// The network is back: a new member of the group gets what was left.
	fn.Heal()
	next := quietKafkaBus(t, brokers, nil)
	if _, err := next.On(topic, func(_ context.Context, e *eventstream.Event) error {
		l.handle(e.ID)
		return nil
	}, group); err != nil {
		t.Fatal(err)
	}
	l.waitAll(t, 60*time.Second, nil)
}

// With the broker gone, an asynchronous Emit's callback reports the
// failure once DeliveryTimeout runs out, instead of never.
func TestKafkaAsyncDeliveryTimeout(t *testing.T) {
	c, brokers := ownKafkaCluster(t)
	testAsyncDeliveryTimeout(t, brokers, func() { c.Close() })
}

func TestKafkaRealBrokerKilledAsyncDeliveryTimeout(t *testing.T) {
	brokers, kill := killableRealBroker(t)
	testAsyncDeliveryTimeout(t, brokers, kill)
}

func testAsyncDeliveryTimeout(t *testing.T, brokers []string, kill func()) {
	topic := eventstreamtest.Topic(t)
	b := quietKafkaBus(t, brokers, func(c *eventstream.Config) {
		c.Kafka.DeliveryTimeout = 2 * time.Second
		c.ShutdownTimeout = 2 * time.Second
	})
	if err := b.Emit(context.Background(), topic, "first"); err != nil {
		t.Fatal(err)
	}
	kill()
	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int64
	wg.Add(n)
	for i := range n {
		if err := b.Emit(context.Background(), topic, i, eventstream.WithAsync(func(err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("30 s after the broker died, %d of %d asynchronous callbacks had run", failed.Load(), n)
	}
	if failed.Load() != n {
		t.Errorf("%d of %d callbacks reported a failure", failed.Load(), n)
	}
}

// With the broker gone and the default DeliveryTimeout (longer than the
// test), Close fails what the producer still holds and returns only once
// every asynchronous callback has run.
func TestKafkaAsyncCallbacksBeforeCloseReturns(t *testing.T) {
	c, brokers := ownKafkaCluster(t)
	testAsyncCallbacksBeforeClose(t, brokers, func() { c.Close() })
}

func TestKafkaRealBrokerKilledAsyncCallbacksBeforeClose(t *testing.T) {
	brokers, kill := killableRealBroker(t)
	testAsyncCallbacksBeforeClose(t, brokers, kill)
}

func testAsyncCallbacksBeforeClose(t *testing.T, brokers []string, kill func()) {
	topic := eventstreamtest.Topic(t)
	cfg := kafkaTestConfig(brokers)
	cfg.ShutdownTimeout = 2 * time.Second
	b, err := eventstream.New(cfg, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Emit(context.Background(), topic, "first"); err != nil {
		t.Fatal(err)
	}
	kill()
	const n = 200
	var ran, closedErr atomic.Int64
	for i := range n {
		if err := b.Emit(context.Background(), topic, i, eventstream.WithAsync(func(err error) {
			if errors.Is(err, eventstream.ErrClosed) {
				closedErr.Add(1)
			}
			ran.Add(1)
		})); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	err = b.Close()
	got := ran.Load()
	t.Logf("Close took %v: %v; %d callbacks ran before it returned (%d with ErrClosed)",
		time.Since(start).Round(10*time.Millisecond), err, got, closedErr.Load())
	if got != n {
		t.Fatalf("%d of %d asynchronous callbacks had run when Close returned", got, n)
	}
	if err == nil && closedErr.Load() == 0 {
		t.Error("Close returned nil and no callback was told ErrClosed: the failures went unreported")
	}
}

// ownKafkaCluster is an in-process cluster the test may close (kill) early.
func ownKafkaCluster(t *testing.T) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(c.Close) })
	return c, c.ListenAddrs()
}

// killableRealBroker returns the real cluster and a function that kills its
// broker with SIGKILL; the broker is restarted when the test ends. It needs
// EVENTSTREAM_KAFKA_SCRIPT, as TestKafkaRealBrokerRestart.
func killableRealBroker(t *testing.T) ([]string, func()) {
	t.Helper()
	brokers := eventstreamtest.RealKafkaBrokers(t)
	script := os.Getenv("EVENTSTREAM_KAFKA_SCRIPT")
	if script == "" {
		t.Skip("EVENTSTREAM_KAFKA_SCRIPT is not set: it must name the script that kill9s and restarts the broker of " +
			eventstreamtest.BrokersEnv + " (scripts/kafka.sh)")
	}
	run := func(cmd string) {
		if out, err := exec.Command(script, cmd).CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", script, cmd, err, out)
		}
	}
	var killed atomic.Bool
	t.Cleanup(func() {
		if killed.Load() {
			run("restart")
		}
	})
	return brokers, func() {
		killed.Store(true)
		run("kill9")
	}
}
