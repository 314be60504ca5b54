// Package eventstreamtest holds the conformance suite that every EventStream
// transport passes, so that memory mode and Kafka mode keep one meaning.
package eventstreamtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"libx.net/eventstream"
)

// Setup is what a test asks of the bus under test.
type Setup struct {
	// BufferSize for memory mode's lanes; 0 means the default.
	BufferSize int
	// ShutdownTimeout for Close; 0 means the default.
	ShutdownTimeout time.Duration
	// Options are added to the bus's options.
	Options []eventstream.Option
}

// Transport describes the transport under test.
type Transport struct {
	// New returns a fresh bus. The suite closes it.
	New func(t *testing.T, s Setup) eventstream.EventBus
	// Backpressure: Emit blocks on a full queue (memory mode). Kafka's log
	// has no such bound, so the test is run where it means something.
	Backpressure bool
	// Timeout bounds each wait for deliveries. Default 10s.
	Timeout time.Duration
}

// Run runs the suite.
func Run(t *testing.T, tr Transport) {
	if tr.Timeout == 0 {
		tr.Timeout = 10 * time.Second
	}
	tests := []struct {
		name string
		f    func(*testing.T, Transport)
	}{
		{"Delivery", testDelivery},
		{"ConsumerGroups", testConsumerGroups},
		{"OrderConcurrencyOne", testOrder},
		{"PerKeyOrderUnderConcurrency", testPerKeyOrder},
		{"ConcurrencyRunsInParallel", testConcurrencyParallel},
		{"RetriesWithBackoff", testRetries},
		{"PermanentErrorNotRetried", testPermanent},
		{"PanicIsRetriedError", testPanic},
		{"DeadLetter", testDeadLetter},
		{"Backpressure", testBackpressure},
		{"CloseDrains", testCloseDrains},
		{"CloseIdempotentAndRefuses", testCloseRefuses},
		{"Off", testOff},
		{"OffKeepsGroupDelivery", testOffGroup},
		{"BadInput", testBadInput},
		{"KeyAndHeaders", testKeyAndHeaders},
		{"Lineage", testLineage},
		{"Requeue", testRequeue},
		{"RequeueLimit", testRequeueLimit},
		{"CircuitBreaker", testCircuitBreaker},
		{"RateLimit", testRateLimit},
		{"TypedHandler", testTypedHandler},
		{"CorrelationMiddleware", testCorrelationMiddleware},
	}
	for _, tc := range tests {
		if tc.name == "Backpressure" && !tr.Backpressure {
			continue // Kafka's log is the buffer: there is no bounded queue to fill
		}
		t.Run(tc.name, func(t *testing.T) { tc.f(t, tr) })
	}
}

// Topic returns a topic name unique to this test run, valid in both modes.
func Topic(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := regexp.MustCompile(`[^a-zA-Z0-9._-]+`).ReplaceAllString(t.Name(), "-")
	if len(name) > 180 {
		name = name[len(name)-180:]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

func newBus(t *testing.T, tr Transport, s Setup) eventstream.EventBus {
	t.Helper()
	b := tr.New(t, s)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// collector gathers handled events and lets a test wait for a count.
type collector struct {
	mu     sync.Mutex
	events []*eventstream.Event
	by     map[string][]string // group → event ids
	notify chan struct{}
}

func newCollector() *collector {
	return &collector{by: map[string][]string{}, notify: make(chan struct{}, 1)}
}

func (c *collector) handler(group string) eventstream.EventHandler {
	return func(_ context.Context, e *eventstream.Event) error {
		c.add(group, e)
		return nil
	}
}

func (c *collector) add(group string, e *eventstream.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.by[group] = append(c.by[group], e.ID)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

func (c *collector) wait(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for c.len() < n {
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("got %d events, want %d within %v", c.len(), n, timeout)
		}
	}
}

// settle waits briefly to see that no further events arrive.
func (c *collector) settle(t *testing.T, n int) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	if got := c.len(); got != n {
		t.Fatalf("got %d events, want exactly %d", got, n)
	}
}

func emitN(t *testing.T, b eventstream.EventBus, ctx context.Context, topic string, n int, opts ...eventstream.EmitOption) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := b.Emit(ctx, topic, map[string]any{"n": i}, opts...); err != nil {
			t.Fatalf("Emit %d: %v", i, err)
		}
	}
}

func seq(e *eventstream.Event) int {
	var v struct{ N int }
	if err := e.Unmarshal(&v); err != nil {
		panic(err)
	}
	return v.N
}

func testDelivery(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	c := newCollector()
	if _, err := b.On(topic, c.handler("")); err != nil {
		t.Fatal(err)
	}
	type user struct {
		UserID string `json:"user_id"`
		Email  string `json:"email"`
	}
	if err := b.Emit(context.Background(), topic, user{"12345", "user@example.com"}); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1, tr.Timeout)
	e := c.events[0]
	var got user
	if err := e.Unmarshal(&got); err != nil {
		t.Fatal(err)
	}
	if got != (user{"12345", "user@example.com"}) {
		t.Errorf("Unmarshal = %+v", got)
	}
	if e.Topic != topic || e.ID == "" || e.Time.IsZero() || time.Since(e.Time) > time.Minute {
		t.Errorf("event metadata: topic %q id %q time %v", e.Topic, e.ID, e.Time)
	}
	c.settle(t, 1)
}

func testConsumerGroups(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	c := newCollector()
	// Two groups of two members each, plus one subscription on its own.
	for _, g := range []string{"notification", "points"} {
		for m := 0; m < 2; m++ {
			if _, err := b.On(topic, c.handler(g), eventstream.WithConsumerGroup(g+"-"+topic)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.On(topic, c.handler("alone")); err != nil {
		t.Fatal(err)
	}
	const n = 50
	emitN(t, b, context.Background(), topic, n)
	c.wait(t, 3*n, tr.Timeout)
	c.settle(t, 3*n)
	for _, g := range []string{"notification", "points", "alone"} {
		ids := append([]string(nil), c.by[g]...)
		sort.Strings(ids)
		if len(ids) != n {
			t.Errorf("group %s handled %d events, want %d", g, len(ids), n)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] == ids[i-1] {
				t.Errorf("group %s handled %s twice", g, ids[i])
			}
		}
	}
}

func testOrder(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	var mu sync.Mutex
	var got []int
	c := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		mu.Lock()
		got = append(got, seq(e))
		mu.Unlock()
		c.add("", e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const n = 500
	// One key: Kafka keeps order per partition, so the suite pins one.
	emitN(t, b, context.Background(), topic, n, eventstream.WithKey("order"))
	c.wait(t, n, tr.Timeout)
	mu.Lock()
	defer mu.Unlock()
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d arrived at position %d", v, i)
		}
	}
}

func testPerKeyOrder(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	const keys, perKey = 8, 60
	var mu sync.Mutex
	last := map[string]int{}
	running := map[string]bool{}
	var violations []string
	c := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		mu.Lock()
		if running[e.Key] {
			violations = append(violations, "two events of key "+e.Key+" at once")
		}
		running[e.Key] = true
		n := seq(e)
		if prev, ok := last[e.Key]; ok && n != prev+1 {
			violations = append(violations, fmt.Sprintf("key %s: %d after %d", e.Key, n, prev))
		}
		last[e.Key] = n
		mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		mu.Lock()
		running[e.Key] = false
		mu.Unlock()
		c.add("", e)
		return nil
	}, eventstream.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			if err := b.Emit(context.Background(), topic, map[string]any{"n": i}, eventstream.WithKey("k"+strconv.Itoa(k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.wait(t, keys*perKey, tr.Timeout)
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("%d order violations, first: %s", len(violations), violations[0])
	}
}

func testConcurrencyParallel(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	var cur, peak atomic.Int32
	release := make(chan struct{})
	c := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		cur.Add(-1)
		c.add("", e)
		return nil
	}, eventstream.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 16; k++ {
		if err := b.Emit(context.Background(), topic, k, eventstream.WithKey("key-"+strconv.Itoa(k))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(tr.Timeout)
	for peak.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	c.wait(t, 16, tr.Timeout)
	if p := peak.Load(); p < 2 || p > 4 {
		t.Fatalf("peak concurrency %d, want 2..4", p)
	}
}

var errFlaky = errors.New("flaky")

func testRetries(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	var mu sync.Mutex
	var times []time.Time
	var attempts []int
	done := make(chan struct{})
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		attempts = append(attempts, eventstreamAttempt(ctx))
		if len(times) < 3 {
			return errFlaky
		}
		close(done)
		return nil
	}, eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: 3, BackoffStrategy: "exponential",
		InitialDelay: 40 * time.Millisecond, MaxDelay: time.Second, Multiplier: 2,
	})); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(tr.Timeout):
		t.Fatal("handler never succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, 2, 3}; fmt.Sprint(attempts) != fmt.Sprint(want) {
		t.Errorf("attempts %v, want %v", attempts, want)
	}
	// Backoff lower bounds only: the machine may be slow, never fast.
	if d := times[1].Sub(times[0]); d < 40*time.Millisecond {
		t.Errorf("first retry after %v, want >= 40ms", d)
	}
	if d := times[2].Sub(times[1]); d < 80*time.Millisecond {
		t.Errorf("second retry after %v, want >= 80ms", d)
	}
}

func testPermanent(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	var calls atomic.Int32
	dlq := newCollector()
	if _, err := b.On(topic+".dlq", dlq.handler("dlq")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		calls.Add(1)
		return eventstream.Permanent(errors.New("malformed order"))
	}, fastRetry(5)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "x"); err != nil {
		t.Fatal(err)
	}
	dlq.wait(t, 1, tr.Timeout)
	if n := calls.Load(); n != 1 {
		t.Fatalf("permanent error handled %d times, want 1", n)
	}
	if got := dlq.events[0].Header(eventstream.HeaderDeadLetterAttempts); got != "1" {
		t.Errorf("attempts header %q, want 1", got)
	}
}

func testPanic(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	var calls atomic.Int32
	c := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		c.add("", e)
		return nil
	}, fastRetry(2)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "x"); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1, tr.Timeout)
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2 (panic, then success)", n)
	}
}

func testDeadLetter(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	dlq := newCollector()
	if _, err := b.On(topic+".dlq", dlq.handler("dlq")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		calls.Add(1)
		return errors.New("payment service down")
	}, eventstream.WithConsumerGroup("billing-"+topic), fastRetry(2)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, map[string]any{"order": 7},
		eventstream.WithHeaders(map[string]string{"tenant": "acme"})); err != nil {
		t.Fatal(err)
	}
	dlq.wait(t, 1, tr.Timeout)
	dlq.settle(t, 1)
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3 (1 + 2 retries)", n)
	}
	d := dlq.events[0]
	want := map[string]string{
		eventstream.HeaderDeadLetterTopic:    topic,
		eventstream.HeaderDeadLetterAttempts: "3",
		eventstream.HeaderDeadLetterReason:   "payment service down",
		eventstream.HeaderDeadLetterGroup:    "billing-" + topic,
		"tenant":                             "acme",
	}
	for k, v := range want {
		if got := d.Header(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if d.Header(eventstream.HeaderDeadLetterID) == "" {
		t.Error("dead letter lacks the original event id")
	}
	var body struct{ Order int }
	if err := d.Unmarshal(&body); err != nil || body.Order != 7 {
		t.Errorf("dead letter body %+v, %v", body, err)
	}
}

func testBackpressure(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{BufferSize: 4})
	topic := Topic(t)
	release := make(chan struct{})
	c := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		<-release
		c.add("", e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := b.Emit(ctx, topic, i)
		cancel()
		if err != nil {
			if !errors.Is(err, eventstream.ErrQueueFull) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Emit on a full queue: %v, want ErrQueueFull and DeadlineExceeded", err)
			}
			break
		}
		accepted++
	}
	if accepted < 4 || accepted > 5 {
		t.Fatalf("accepted %d events before blocking, want the buffer (4) plus at most the one in hand", accepted)
	}
	close(release)
	c.wait(t, accepted, tr.Timeout)
	c.settle(t, accepted) // nothing refused was delivered, nothing accepted was lost
}

func testCloseDrains(t *testing.T, tr Transport) {
	b := tr.New(t, Setup{})
	topic := Topic(t)
	c := newCollector()
	if _, err := b.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		time.Sleep(time.Millisecond)
		c.add("", e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	emitN(t, b, context.Background(), topic, n)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := c.len(); got != n {
		t.Fatalf("Close returned with %d of %d accepted events handled", got, n)
	}
}

func testCloseRefuses(t *testing.T, tr Transport) {
	b := tr.New(t, Setup{})
	topic := Topic(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Emit(context.Background(), topic, 1); !errors.Is(err, eventstream.ErrClosed) {
		t.Fatalf("Emit after Close: %v, want ErrClosed", err)
	}
	if _, err := b.On(topic, func(context.Context, *eventstream.Event) error { return nil }); !errors.Is(err, eventstream.ErrClosed) {
		t.Fatalf("On after Close: %v, want ErrClosed", err)
	}
}

func testOff(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	c := newCollector()
	sub, err := b.On(topic, c.handler(""))
	if err != nil {
		t.Fatal(err)
	}
	emitN(t, b, context.Background(), topic, 3)
	c.wait(t, 3, tr.Timeout)
	if err := b.Off(sub); err != nil {
		t.Fatal(err)
	}
	emitN(t, b, context.Background(), topic, 3)
	c.settle(t, 3)
	if err := b.Off(sub); !errors.Is(err, eventstream.ErrUnknownSubscription) {
		t.Fatalf("second Off: %v, want ErrUnknownSubscription", err)
	}
}

func testOffGroup(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	group := eventstream.WithConsumerGroup("g-" + topic)
	c := newCollector()
	a, err := b.On(topic, c.handler("g"), group)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.On(topic, c.handler("g"), group); err != nil {
		t.Fatal(err)
	}
	emitN(t, b, context.Background(), topic, 20)
	if err := b.Off(a); err != nil {
		t.Fatal(err)
	}
	emitN(t, b, context.Background(), topic, 20)
	c.wait(t, 40, tr.Timeout)
}

func testBadInput(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	ctx := context.Background()
	ok := func(context.Context, *eventstream.Event) error { return nil }
	for _, topic := range []string{"", "has space", "slash/topic", string(make([]byte, 250)), "ünïcode"} {
		if err := b.Emit(ctx, topic, 1); !errors.Is(err, eventstream.ErrInvalidTopic) {
			t.Errorf("Emit(%q): %v, want ErrInvalidTopic", topic, err)
		}
		if _, err := b.On(topic, ok); !errors.Is(err, eventstream.ErrInvalidTopic) {
			t.Errorf("On(%q): %v, want ErrInvalidTopic", topic, err)
		}
	}
	topic := Topic(t)
	if _, err := b.On(topic, nil); !errors.Is(err, eventstream.ErrNilHandler) {
		t.Errorf("On(nil): %v, want ErrNilHandler", err)
	}
	if _, err := b.On(topic, ok, eventstream.WithConcurrency(0)); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Errorf("WithConcurrency(0): %v, want ErrInvalidConfig", err)
	}
	if _, err := b.On(topic, ok, eventstream.WithRetryPolicy(&eventstream.RetryPolicy{MaxRetries: -1})); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Errorf("negative MaxRetries: %v, want ErrInvalidConfig", err)
	}
	if _, err := b.On(topic, ok, eventstream.WithRetryPolicy(&eventstream.RetryPolicy{BackoffStrategy: "fibonacci"})); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Errorf("unknown backoff: %v, want ErrInvalidConfig", err)
	}
	for _, data := range []any{make(chan int), func() {}, complex(1, 2), map[bool]int{true: 1}, struct{ F func() }{}} {
		if err := b.Emit(ctx, topic, data); !errors.Is(err, eventstream.ErrEncode) {
			t.Errorf("Emit(%T): %v, want ErrEncode", data, err)
		}
	}
	if err := b.Off(nil); !errors.Is(err, eventstream.ErrUnknownSubscription) {
		t.Errorf("Off(nil): %v, want ErrUnknownSubscription", err)
	}
	// Bad input loses nothing: a good event still arrives, alone.
	c := newCollector()
	if _, err := b.On(topic, c.handler("")); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(ctx, topic, "good"); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1, tr.Timeout)
	c.settle(t, 1)
}

func testKeyAndHeaders(t *testing.T, tr Transport) {
	b := newBus(t, tr, Setup{})
	topic := Topic(t)
	c := newCollector()
	if _, err := b.On(topic, c.handler("")); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, "x", eventstream.WithKey("order-42"),
		eventstream.WithHeaders(map[string]string{"tenant": "acme"})); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1, tr.Timeout)
	e := c.events[0]
	if e.Key != "order-42" || e.Header("tenant") != "acme" {
		t.Fatalf("key %q headers %v", e.Key, e.Headers)
	}
}

func fastRetry(n int) eventstream.SubscribeOption {
	return eventstream.WithRetryPolicy(&eventstream.RetryPolicy{
		MaxRetries: n, BackoffStrategy: "constant", InitialDelay: 5 * time.Millisecond,
	})
}

func eventstreamAttempt(ctx context.Context) int { return eventstream.Attempt(ctx) }
