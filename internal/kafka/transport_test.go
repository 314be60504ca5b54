package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/lanes"
	"libx.net/eventstream/internal/transport"
)

// env is an in-process cluster and what a bus would lend a transport.
type env struct {
	t       testing.TB
	brokers []string
	sched   *lanes.Scheduler
	base    context.Context
	logs    *logBuffer
}

// logBuffer keeps the transports' warnings, shown when the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newEnv(t testing.TB, poolSize int) *env {
	t.Helper()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("transport logs:\n%s", logs)
		}
	})
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sched, err := lanes.NewScheduler(poolSize, time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	base, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = sched.Close(5 * time.Second)
	})
	return &env{t: t, brokers: c.ListenAddrs(), sched: sched, base: base, logs: logs}
}

// transport returns a transport closed at cleanup; tune may change its
// config and host.
func (v *env) transport(tune func(*Config, *transport.Host)) *Transport {
	v.t.Helper()
	cfg := Config{
		Brokers: v.brokers, ClientID: "test", Source: "/test",
		CommitInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond, JoinTimeout: 20 * time.Second,
		FetchMaxWait: 100 * time.Millisecond,
	}
	h := transport.Host{
		Logger: slog.New(slog.NewTextHandler(v.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), BaseCtx: v.base,
		ShutdownTimeout: 5 * time.Second, QueueSize: 16, Sched: v.sched,
	}
	if tune != nil {
		tune(&cfg, &h)
	}
	tr, err := New(h, cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { closeTransport(v.t, tr, time.Second) })
	return tr
}

// closeTransport does what the bus's Close does: drain, then close.
func closeTransport(t testing.TB, tr *Transport, drain time.Duration) (unhandled int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	unhandled = tr.Drain(ctx)
	if err := tr.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	return unhandled
}

func (v *env) client(opts ...kgo.Opt) *kgo.Client {
	v.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(v.brokers...)}, opts...)...)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(cl.Close)
	return cl
}

// produce writes n records of value "i" to partition 0 of topic, keyless.
func (v *env) produce(topic string, n int) {
	v.t.Helper()
	cl := v.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		v.t.Fatal(err)
	}
}

// committed returns the group's committed offset of partition 0, -1 when
// there is none.
func (v *env) committed(group, topic string) int64 {
	v.t.Helper()
	offs, err := kadm.NewClient(v.client()).FetchOffsets(context.Background(), group)
	if err != nil {
		v.t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); ok && o.Err == nil {
		return o.At
	}
	return -1
}

// recorder is a Deliver that notes what it was given, and then does what
// the test says.
type recorder struct {
	mu       sync.Mutex
	offsets  []int64
	failures map[int64]error
	notify   chan struct{}
	then     func(e *event.Event, failure error) error
}

func newRecorder(then func(*event.Event, error) error) *recorder {
	return &recorder{failures: map[int64]error{}, notify: make(chan struct{}, 1), then: then}
}

func (r *recorder) deliver(_ context.Context, e *event.Event, failure error) error {
	r.mu.Lock()
	r.offsets = append(r.offsets, e.Record.Offset)
	if failure != nil {
		r.failures[e.Record.Offset] = failure
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	if r.then != nil {
		return r.then(e, failure)
	}
	return nil
}

func (r *recorder) seen() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.offsets)
}

// waitFor waits until cond holds on what was delivered.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]int64) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !cond(r.seen()) {
		select {
		case <-r.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("never %s; delivered %v", what, r.seen())
		}
	}
}

func sub(topic, group string, concurrency int, r *recorder) *transport.Sub {
	return &transport.Sub{ID: "sub-" + topic, Topic: topic, Group: group, Concurrency: concurrency, Deliver: r.deliver}
}

func contains(off int64) func([]int64) bool {
	return func(s []int64) bool { return slices.Contains(s, off) }
}

// Defect: a dead letter that could not be written was logged and its
// offset committed — the event lost. Deliver's error now means "not done":
// the partition never commits past the event, and a new member gets it.
func TestDeliverErrorHoldsCommit(t *testing.T) {
	for _, concurrency := range []int{1, 4} {
		t.Run("concurrency-"+strconv.Itoa(concurrency), func(t *testing.T) {
			v := newEnv(t, 4)
			tr := v.transport(nil)
			topic, group := "held", "held-group"
			r := newRecorder(func(e *event.Event, _ error) error {
				if e.Record.Offset == 3 {
					return errors.New("dead letter not written before shutdown")
				}
				return nil
			})
			if err := tr.Subscribe(sub(topic, group, concurrency, r)); err != nil {
				t.Fatal(err)
			}
			v.produce(topic, 10)
			r.waitFor(t, "delivered offset 3", contains(3))
			time.Sleep(500 * time.Millisecond) // several commit intervals
			if concurrency == 1 {
				if got := r.seen(); !slices.Equal(got, []int64{0, 1, 2, 3}) {
					t.Errorf("delivered %v: the partition went on past an event that is not done", got)
				}
			}
			if n := closeTransport(t, tr, 300*time.Millisecond); n == 0 {
				t.Error("Drain reported every event handled")
			}
			if got := v.committed(group, topic); got != 3 {
				t.Fatalf("committed offset %d, want 3 (the event that is not done)", got)
			}

			// The group's next member starts at that event.
			again := newRecorder(nil)
			tr2 := v.transport(nil)
			if err := tr2.Subscribe(sub(topic, group, 1, again)); err != nil {
				t.Fatal(err)
			}
			again.waitFor(t, "redelivered offset 3 to the next member", func(s []int64) bool { return len(s) > 0 && s[0] == 3 })
		})
	}
}

// Defect: a Publish whose context was cancelled made the next Publish to
// the topic fail (or every later one, when it was the producer's first
// record). A cancelled Publish fails alone, and so does one cancelled
// while it waits for the acknowledgement.
func TestCancelledPublishFailsAlone(t *testing.T) {
	v := newEnv(t, 2)
	tr := v.transport(nil)
	topic := "cancelled"
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err := tr.Publish(cancelled, event.New(topic, 1), transport.PublishOptions{})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrKafka) {
		t.Fatalf("Publish with a cancelled context: %v", err)
	}
	// The producer's very first record, right after.
	e := event.New(topic, 2)
	if err := tr.Publish(context.Background(), e, transport.PublishOptions{}); err != nil {
		t.Fatalf("Publish after a cancelled one: %v", err)
	}
	if e.Record == nil {
		t.Fatal("a synchronous Publish did not set the record's position")
	}

	// Records whose contexts end while they are buffered or in flight,
	// interleaved with records whose contexts never end.
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 200 {
		wg.Go(func() {
			if i%2 == 0 {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(time.Duration(i%7)*100*time.Microsecond, cancel)
				_ = tr.Publish(ctx, event.New(topic, i), transport.PublishOptions{})
				return
			}
			if err := tr.Publish(context.Background(), event.New(topic, i), transport.PublishOptions{}); err != nil {
				failed.Add(1)
				t.Errorf("Publish %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d publishes with live contexts failed beside cancelled ones", n)
	}
}

// Done is called once with the outcome, and Publish returns ErrClosed
// from the moment Drain begins (dead letters and handlers' emits, marked
// Overflow, until Close).
func TestPublishDoneAndClosed(t *testing.T) {
	v := newEnv(t, 2)
	tr := v.transport(nil)
	topic := "async"
	var calls atomic.Int32
	done := make(chan error, 10)
	for i := range 10 {
		err := tr.Publish(context.Background(), event.New(topic, i), transport.PublishOptions{Done: func(err error) {
			calls.Add(1)
			done <- err
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	tr.Drain(ctx)
	if err := tr.Publish(ctx, event.New(topic, 1), transport.PublishOptions{}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Publish during Drain: %v", err)
	}
	if err := tr.Publish(ctx, event.New(topic, 1), transport.PublishOptions{Overflow: true}); err != nil {
		t.Fatalf("dead letter during Drain: %v", err)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, event.New(topic, 1), transport.PublishOptions{Overflow: true}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if n := calls.Load(); n != 10 {
		t.Fatalf("Done called %d times for 10 records", n)
	}
}

// A value that is not JSON reaches Deliver with a *DecodeError as the
// failure: the bus applies the NonJSON policy.
func TestNonJSONReportedToDeliver(t *testing.T) {
	v := newEnv(t, 2)
	tr := v.transport(nil)
	topic := "foreign"
	r := newRecorder(nil)
	if err := tr.Subscribe(sub(topic, "foreign-group", 1, r)); err != nil {
		t.Fatal(err)
	}
	cl := v.client()
	if err := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: topic, Value: []byte("not json")},
		&kgo.Record{Topic: topic, Value: []byte(`{"ok":true}`)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "delivered both records", func(s []int64) bool { return len(s) == 2 })
	r.mu.Lock()
	defer r.mu.Unlock()
	var de *DecodeError
	if !errors.As(r.failures[0], &de) || de.Offset != 0 {
		t.Errorf("failure of the text record: %v", r.failures[0])
	}
	if r.failures[1] != nil {
		t.Errorf("failure of the JSON record: %v", r.failures[1])
	}
}

// Defect: a handler that ended its goroutine (runtime.Goexit, as t.FailNow
// does) wedged its lane. Its event reaches Deliver again with ErrGoexit,
// the lane goes on, and the offset is committed.
func TestGoexitDoesNotWedgeLane(t *testing.T) {
	v := newEnv(t, 1)
	tr := v.transport(nil)
	topic, group := "goexit", "goexit-group"
	r := newRecorder(func(e *event.Event, failure error) error {
		if e.Record.Offset == 1 && failure == nil {
			runtime.Goexit()
		}
		return nil
	})
	if err := tr.Subscribe(sub(topic, group, 1, r)); err != nil {
		t.Fatal(err)
	}
	v.produce(topic, 5)
	r.waitFor(t, "delivered offset 4", contains(4))
	r.mu.Lock()
	failure := r.failures[1]
	r.mu.Unlock()
	if !errors.Is(failure, transport.ErrGoexit) {
		t.Fatalf("offset 1 came back with failure %v, want ErrGoexit", failure)
	}
	closeTransport(t, tr, 2*time.Second)
	if got := v.committed(group, topic); got != 5 {
		t.Fatalf("committed %d, want 5", got)
	}
}

// Defect: with a pool of one worker, the poll goroutine of a subscription
// blocked in the pool while a busy subscription kept the worker, so an
// event on another topic waited behind the busy topic indefinitely. The
// scheduler is fair across lanes and polling never waits for a worker.
func TestSmallPoolDoesNotStarve(t *testing.T) {
	v := newEnv(t, 1)
	tr := v.transport(nil)
	busy := newRecorder(func(*event.Event, error) error {
		time.Sleep(time.Millisecond)
		return nil
	})
	if err := tr.Subscribe(sub("busy", "busy-group", 1, busy)); err != nil {
		t.Fatal(err)
	}
	v.produce("busy", 5000)
	busy.waitFor(t, "got busy", func(s []int64) bool { return len(s) >= 50 })

	quiet := newRecorder(nil)
	if err := tr.Subscribe(sub("quiet", "quiet-group", 1, quiet)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(context.Background(), event.New("quiet", 1), transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	quiet.waitFor(t, "handled the quiet topic's event", func(s []int64) bool { return len(s) == 1 })
	// Not a timing bound (a loaded machine stretches any): the busy topic,
	// five seconds of work on the only worker, must still be going.
	if n := len(busy.seen()); n >= 5000 {
		t.Fatalf("the busy topic was done (%d) before the quiet one: the test proved nothing", n)
	}
}

// Defect: Off returned at ShutdownTimeout while a handler still ran. It
// now waits for the handlers in flight, and their events are committed.
func TestUnsubscribeWaitsForHandlers(t *testing.T) {
	v := newEnv(t, 2)
	tr := v.transport(func(_ *Config, h *transport.Host) { h.ShutdownTimeout = 100 * time.Millisecond })
	topic, group := "off-waits", "off-waits-group"
	release := make(chan struct{})
	r := newRecorder(func(*event.Event, error) error {
		<-release
		return nil
	})
	s := sub(topic, group, 1, r)
	if err := tr.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	v.produce(topic, 1)
	r.waitFor(t, "started the handler", contains(0))
	returned := make(chan struct{})
	go func() {
		_ = tr.Unsubscribe(s)
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("Unsubscribe returned while the handler ran")
	case <-time.After(500 * time.Millisecond): // five ShutdownTimeouts
	}
	close(release)
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Unsubscribe did not return once the handler did")
	}
	if got := v.committed(group, topic); got != 1 {
		t.Fatalf("committed %d after Off, want 1", got)
	}
}

// Defect: Off from the subscription's own handler waited for that very
// handler (memory mode: forever; Kafka: ShutdownTimeout). It returns once
// the other handlers in flight are done; the member leaves after the
// calling handler returned, so that its event is committed too.
func TestUnsubscribeFromOwnHandler(t *testing.T) {
	v := newEnv(t, 4)
	tr := v.transport(nil)
	topic, group := "off-inside", "off-inside-group"
	var s *transport.Sub
	otherStarted := make(chan struct{})
	var otherDone, offReturned atomic.Int64 // unix nanos
	offErr := make(chan error, 1)
	r := newRecorder(func(e *event.Event, _ error) error {
		if e.Record.Offset == 1 { // the other lane
			close(otherStarted)
			time.Sleep(300 * time.Millisecond)
			otherDone.Store(time.Now().UnixNano())
			return nil
		}
		<-otherStarted
		err := tr.Unsubscribe(s)
		offReturned.Store(time.Now().UnixNano())
		offErr <- err
		return nil
	})
	s = sub(topic, group, 2, r)
	if err := tr.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	v.produce(topic, 2) // keyless: one record per lane
	select {
	case err := <-offErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Off from the subscription's own handler did not return")
	}
	if offReturned.Load() < otherDone.Load() || otherDone.Load() == 0 {
		t.Fatal("Off returned before the other handler in flight finished")
	}
	deadline := time.Now().Add(10 * time.Second)
	for v.committed(group, topic) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d, want 2: the calling handler's event was not committed", v.committed(group, topic))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Queue depth, lag, the server address and private group names: the
// transport's optional capabilities.
func TestCapabilities(t *testing.T) {
	v := newEnv(t, 2)
	tr, other := v.transport(nil), v.transport(nil)
	if tr.PrivateGroup("t", "sub-1") == other.PrivateGroup("t", "sub-1") {
		t.Error("two transports (processes) named a private group alike")
	}
	if host, port := tr.ServerAddress(); host == "" || port == 0 {
		t.Errorf("server address %q %d", host, port)
	}
	topic := "caps"
	release := make(chan struct{})
	r := newRecorder(func(*event.Event, error) error {
		<-release
		return nil
	})
	s := sub(topic, "caps-group", 1, r)
	if err := tr.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	defer close(release)
	v.produce(topic, 5)
	deadline := time.Now().Add(10 * time.Second)
	for tr.QueueDepth(s) != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("queue depth %d, want 5 (one in hand, four queued)", tr.QueueDepth(s))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var lag int64 = -1
	tr.ReportLag(func(topic, group string, partition int32, l int64) {
		if topic == "caps" && group == "caps-group" && partition == 0 {
			lag = l
		}
	})
	if lag != 5 {
		t.Errorf("lag %d, want 5", lag)
	}
}
