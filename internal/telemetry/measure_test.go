package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/semconv/v1.43.0/messagingconv"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"libx.net/eventstream/event"
	"libx.net/eventstream/history"
	"libx.net/eventstream/internal/eventmeta"
	itel "libx.net/eventstream/internal/telemetry"
	"libx.net/eventstream/middleware"
	"libx.net/eventstream/telemetry"
)

// chains are the bus's telemetry around a no-op transport and a handler.
type chains struct {
	tel     *itel.Telemetry
	sub     *itel.Subscription
	emit    event.Handler
	consume event.Handler
}

func newChains(t testing.TB, cfg itel.Config, handler event.Handler) *chains {
	t.Helper()
	if cfg.System == "" {
		cfg.System, cfg.InProcess = telemetry.SystemMemory, true
	}
	tel, err := itel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := tel.Subscription("orders", "billing", "billing#1", false)
	retry, err := middleware.Retry(middleware.RetryPolicy{MaxRetries: 2}, middleware.OnRetry(
		func(context.Context, *event.Event, int, error, time.Duration) { sub.RecordRetry() }))
	if err != nil {
		t.Fatal(err)
	}
	return &chains{
		tel: tel, sub: sub,
		emit:    event.Chain(nop, tel.Emit()),
		consume: event.Chain(handler, sub.Consume, retry, sub.Process, middleware.Recover()),
	}
}

// run emits e and delivers it.
func (c *chains) run(ctx context.Context, e *event.Event) error {
	if err := c.emit(ctx, e); err != nil {
		return err
	}
	return c.consume(context.Background(), e)
}

// isGlobalPlaceholder reports whether p is one of the otel globals'
// placeholders, i.e. no SDK has been installed behind the globals yet.
func isGlobalPlaceholder(p any) bool {
	t := reflect.TypeOf(p)
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// With no provider that records, an event costs no allocation and carries
// nothing: no span, no context on the event, no headers inside the
// process. History and stats cost none either: the ring and the counters
// are preallocated.
func TestNothingPerEventWithoutSDK(t *testing.T) {
	providers := map[string]itel.Config{
		"no-op providers": {TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider()},
	}
	if isGlobalPlaceholder(otel.GetTracerProvider()) && isGlobalPlaceholder(otel.GetMeterProvider()) {
		providers["otel globals, not set up"] = itel.Config{}
	}
	for name, base := range providers {
		for _, views := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, history and stats %v", name, views), func(t *testing.T) {
				cfg := base
				if views {
					cfg.History, cfg.Stats = 100, true
				}
				c := newChains(t, cfg, nop)
				ctx := baggage.ContextWithBaggage(context.Background(), mustBaggage(t, "tenant", "acme"))
				e := event.New("orders", 1)
				allocs := testing.AllocsPerRun(100, func() {
					e.Headers = nil
					if err := c.run(ctx, e); err != nil {
						t.Fatal(err)
					}
				})
				if allocs != 0 {
					t.Errorf("%v allocations per event", allocs)
				}
				if e.Headers != nil || eventmeta.CreationOf(e) != nil {
					t.Errorf("the event carries headers %v or a creation context", e.Headers)
				}
				got := c.tel.Recent(1 << 20)
				if views && (len(got) != 100 || got[0].TraceID != "" || got[0].EventID != e.ID) {
					t.Errorf("history %d entries, newest %+v", len(got), got[0])
				}
				if st := c.tel.Stats(); views && (st.Emitted != 101 || st.Delivered != 101 || st.Succeeded != 101) {
					t.Errorf("stats %+v", st.Counts)
				}
			})
		}
	}
}

func mustBaggage(t testing.TB, k, v string) baggage.Baggage {
	t.Helper()
	m, err := baggage.NewMember(k, v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := baggage.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An event that leaves the process gets trace headers when there is
// something to pass on, even if this process records nothing: a span
// context (say, from an incoming request) or baggage in the emitting ctx.
func TestHeadersLeaveTheProcessWithoutSDK(t *testing.T) {
	tel, err := itel.New(itel.Config{TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider: metricnoop.NewMeterProvider(), System: telemetry.SystemKafka})
	if err != nil {
		t.Fatal(err)
	}
	emit := event.Chain(nop, tel.Emit())
	e := event.New("orders", 1)
	_ = emit(context.Background(), e)
	if len(e.Headers) != 0 {
		t.Errorf("nothing to pass on, yet headers %v", e.Headers)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
		TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := baggage.ContextWithBaggage(trace.ContextWithRemoteSpanContext(context.Background(), remote),
		mustBaggage(t, "tenant", "acme"))
	e = event.New("orders", 1)
	_ = emit(ctx, e)
	if want := "00-01000000000000000000000000000000-0200000000000000-01"; e.Headers["traceparent"] != want || e.Headers["baggage"] != "tenant=acme" {
		t.Errorf("headers %v, want traceparent %s and the baggage", e.Headers, want)
	}
}

// Over Kafka the creation context travels in the headers, and the process
// span continues it as a remote parent, with its baggage.
func TestKafkaHeadersCarryTheTrace(t *testing.T) {
	r := newRig(t, telemetry.SystemKafka)
	e := event.New("orders", 1)
	_ = r.emit(baggage.ContextWithBaggage(context.Background(), mustBaggage(t, "tenant", "acme")), e, nop)
	if e.Headers["traceparent"] == "" || e.Headers["baggage"] != "tenant=acme" || eventmeta.CreationOf(e) != nil {
		t.Fatalf("headers %v", e.Headers)
	}
	// What the consumer sees: the record's headers, nothing else.
	received := &event.Event{ID: e.ID, Topic: e.Topic, Time: e.Time, Headers: e.Headers, Record: &event.Record{}}
	var tenant string
	_ = r.process(context.Background(), received, 1, func(ctx context.Context, _ *event.Event) error {
		tenant = baggage.FromContext(ctx).Member("tenant").Value()
		return nil
	})
	spans := r.sr.Ended()
	send, proc := spans[0], spans[1]
	if proc.Parent().SpanID() != send.SpanContext().SpanID() || !proc.Parent().IsRemote() || tenant != "acme" {
		t.Errorf("process parent %v (want the send span, remote), baggage %q", proc.Parent(), tenant)
	}
}

// History holds copies: an id that is a view of a buffer reused afterwards
// (as a Kafka fetch buffer is) stays what it was; long ids are kept whole;
// error messages are kept up to 512 bytes.
func TestHistoryKeepsCopies(t *testing.T) {
	c := newChains(t, itel.Config{History: 10}, nop)
	buf := []byte("0190a3c2-0000-7000-8000-000000000001")
	e := event.New("orders", 1)
	e.ID = unsafe.String(&buf[0], len(buf))
	_ = c.emit(context.Background(), e)
	copy(buf, "XXXXXXXX")
	long := strings.Repeat("k", 200)
	e2 := event.New("orders", 1)
	e2.ID = long
	_ = c.emit(context.Background(), e2)
	huge := errors.New(strings.Repeat("é", 600))
	_ = event.Chain(func(context.Context, *event.Event) error { return huge }, c.tel.Emit())(context.Background(), event.New("orders", 1))

	got := c.tel.Recent(1 << 20)
	if len(got) != 3 {
		t.Fatalf("entries %+v", got)
	}
	if got[2].EventID != "0190a3c2-0000-7000-8000-000000000001" {
		t.Errorf("id changed with the buffer: %q", got[2].EventID)
	}
	if got[1].EventID != long {
		t.Errorf("long id cut: %q", got[1].EventID)
	}
	if msg := got[0].Error; len(msg) > 512+len("…") || !strings.HasPrefix(msg, "éé") || !strings.HasSuffix(msg, "é…") {
		t.Errorf("error kept as %d bytes: %q…", len(msg), msg[:10])
	}
}

// The ring keeps the newest entries, newest first, and process entries
// name their group, subscription and attempt.
func TestHistoryOrderAndEntries(t *testing.T) {
	calls := 0
	c := newChains(t, itel.Config{History: 4}, func(ctx context.Context, _ *event.Event) error {
		calls++
		if calls == 1 {
			return errors.New("boom")
		}
		return nil
	})
	e := event.New("orders", 1)
	if err := c.run(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	got := c.tel.Recent(1 << 20)
	if len(got) != 3 {
		t.Fatalf("entries %+v", got)
	}
	p2, p1, send := got[0], got[1], got[2]
	if send.Operation != "send" || send.Group != "" || p1.Operation != "process" || p2.Operation != "process" {
		t.Fatalf("operations %s %s %s", send.Operation, p1.Operation, p2.Operation)
	}
	if p1.Attempt != 1 || p2.Attempt != 2 || p1.Group != "billing" || p1.Subscription != "billing#1" || p1.EventID != e.ID {
		t.Errorf("process entries %+v %+v", p1, p2)
	}
	if p1.Status != history.StatusError || p1.Error != "boom" || p2.Status != history.StatusOK || p2.Error != "" {
		t.Errorf("statuses %+v %+v", p1, p2)
	}
	if p1.Start.Before(send.Start) || p2.Start.Before(p1.Start) || p1.Duration < 0 {
		t.Errorf("times: send %v, attempts %v %v", send.Start, p1.Start, p2.Start)
	}
	var ids []string
	for i := range 6 {
		e := event.New(fmt.Sprintf("t%d", i), 1)
		_ = c.emit(context.Background(), e)
		ids = append(ids, e.ID)
	}
	got = c.tel.Recent(1 << 20)
	if len(got) != 4 || got[0].EventID != ids[5] || got[1].EventID != ids[4] {
		t.Errorf("newest first: %+v", got)
	}
	if got := c.tel.Recent(2); len(got) != 2 || got[0].EventID != ids[5] {
		t.Errorf("Recent(2) = %+v", got)
	}
}

// Writers and readers of the history at once (run with -race).
func TestHistoryConcurrent(t *testing.T) {
	c := newChains(t, itel.Config{History: 64, Stats: true}, nop)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 300 {
				_ = c.run(context.Background(), event.New("orders", 1))
				for _, e := range c.tel.Recent(10) {
					if e.EventID == "" || e.Topic != "orders" {
						t.Errorf("torn entry %+v", e)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got := c.tel.Recent(1 << 20); len(got) != 64 {
		t.Errorf("%d entries", len(got))
	}
	if st := c.tel.Stats(); st.Emitted != 1200 || st.Delivered != 1200 || st.Succeeded != 1200 {
		t.Errorf("stats %+v", st.Counts)
	}
}

// collect reads every metric of the library's scope.
func collectMetrics(t *testing.T, rd *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func sums(m metricdata.Metrics) (ok, failed int64) {
	if s, isSum := m.Data.(metricdata.Sum[int64]); isSum {
		for _, dp := range s.DataPoints {
			if dp.Attributes.HasValue("error.type") {
				failed += dp.Value
			} else {
				ok += dp.Value
			}
		}
	}
	return ok, failed
}

// histPoints merges a histogram's points without and with error.type.
func histPoints(m metricdata.Metrics) (ok, failed uint64, counts []uint64) {
	h, _ := m.Data.(metricdata.Histogram[float64])
	for _, dp := range h.DataPoints {
		if dp.Attributes.HasValue("error.type") {
			failed += dp.Count
		} else {
			ok += dp.Count
		}
		if counts == nil {
			counts = make([]uint64, len(dp.BucketCounts))
		}
		for i, c := range dp.BucketCounts {
			counts[i] += c
		}
	}
	return ok, failed, counts
}

// GetStats and the metrics are the same numbers: counts, and percentiles
// computed from the metric's own buckets.
func TestStatsAgreeWithMetrics(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	calls := 0
	h := func(ctx context.Context, e *event.Event) error {
		calls++
		if calls%4 == 0 {
			return middleware.Permanent(errors.New("bad input"))
		}
		if calls%3 == 0 {
			return errors.New("flaky")
		}
		return nil
	}
	retry, _ := middleware.Retry(middleware.RetryPolicy{MaxRetries: 1},
		middleware.OnRetry(func(context.Context, *event.Event, int, error, time.Duration) { r.sub.RecordRetry() }))
	consume := event.Chain(h, r.sub.Consume, retry, r.sub.Process)
	for i := range 20 {
		e := event.New("orders", i)
		fail := error(nil)
		if i == 7 {
			fail = io.ErrShortWrite
		}
		if err := r.emit(context.Background(), e, func(context.Context, *event.Event) error { return fail }); err != nil {
			continue
		}
		if err := consume(context.Background(), e); err != nil {
			var re *middleware.RetryError
			errors.As(err, &re)
			r.sub.RecordDeadLetter(re.Err)
		}
	}
	st := r.tel.Stats()
	ms := collectMetrics(t, r.rd)
	sentOK, sentErr := sums(ms[telemetry.MetricSentMessages])
	consumed, _ := sums(ms[telemetry.MetricConsumedMessages])
	retried, _ := sums(ms[telemetry.MetricRetries])
	_, dead := sums(ms[telemetry.MetricDeadLetters])
	inFlight, _ := sums(ms[telemetry.MetricInFlight])
	procOK, procErr, procCounts := histPoints(ms[telemetry.MetricProcessDuration])
	_, _, delivCounts := histPoints(ms[telemetry.MetricDeliveryLatency])
	if st.Emitted != sentOK || st.EmitFailed != sentErr || st.Delivered != consumed || st.Retried != retried ||
		st.DeadLettered != dead || st.InFlight != inFlight || st.Succeeded != int64(procOK) || st.Failed != int64(procErr) {
		t.Errorf("stats %+v\nmetrics sent %d/%d consumed %d retried %d dead %d in flight %d process %d/%d",
			st.Counts, sentOK, sentErr, consumed, retried, dead, inFlight, procOK, procErr)
	}
	if st.Emitted != 19 || st.EmitFailed != 1 || st.Delivered != 19 || st.DeadLettered == 0 || st.Retried == 0 {
		t.Errorf("stats %+v", st.Counts)
	}
	for _, q := range []struct {
		got  time.Duration
		list []uint64
		q    float64
	}{{st.LatencyP50, procCounts, 0.5}, {st.LatencyP99, procCounts, 0.99}, {st.DeliveryP95, delivCounts, 0.95}} {
		if want := itel.Quantile(q.list, q.q); q.got != want {
			t.Errorf("p%v = %v, the metric's buckets say %v", q.q*100, q.got, want)
		}
	}
	// error.type of a Permanent failure is the wrapped error's type.
	if _, ok := attrValue(ms[telemetry.MetricDeadLetters], "error.type", "*errors.errorString"); !ok {
		t.Errorf("dead letters by error.type: %+v", ms[telemetry.MetricDeadLetters].Data)
	}
}

func attrValue(m metricdata.Metrics, key, want string) (int64, bool) {
	s, _ := m.Data.(metricdata.Sum[int64])
	for _, dp := range s.DataPoints {
		if v, ok := dp.Attributes.Value(attribute.Key(key)); ok && v.AsString() == want {
			return dp.Value, true
		}
	}
	return 0, false
}

// An emit time ahead of the clock records a delivery latency of 0 and is
// counted; one far behind lands in the overflow bucket, and percentiles
// stay at that bucket's lower edge (10 s) instead of stretching to decades.
func TestClockSkewAndOutliers(t *testing.T) {
	r := newRig(t, telemetry.SystemKafka)
	consume := event.Chain(nop, r.sub.Consume, r.sub.Process)
	deliver := func(at time.Time) {
		// As read from Kafka: a wall-clock time from the producer's host.
		e := &event.Event{ID: "x", Topic: "orders", Time: at.Round(0), Record: &event.Record{}}
		if err := consume(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	deliver(time.Now().Add(time.Hour))
	st := r.tel.Stats()
	if st.DeliveryP99 > 10*time.Microsecond {
		t.Errorf("an emit time an hour ahead gives delivery p99 %v, want the first bucket (0 to 10µs)", st.DeliveryP99)
	}
	ms := collectMetrics(t, r.rd)
	if n, _ := sums(ms[telemetry.MetricClockSkew]); n != 1 {
		t.Errorf("clock skew counted %d times, want 1", n)
	}
	h := ms[telemetry.MetricDeliveryLatency].Data.(metricdata.Histogram[float64])
	if dp := h.DataPoints[0]; dp.Sum < 0 || dp.Count != 1 {
		t.Errorf("delivery latency point %+v: the sum must not go down", dp)
	}

	// Emitted 1.5 s ago: in the (1 s, 2.5 s] bucket, however slow the
	// machine running this test.
	for range 98 {
		deliver(time.Now().Add(-1500 * time.Millisecond))
	}
	deliver(time.Now().AddDate(-10, 0, 0))
	st = r.tel.Stats()
	for _, p := range []time.Duration{st.DeliveryP50, st.DeliveryP99} {
		if p <= time.Second || p > 2500*time.Millisecond {
			t.Errorf("p50 %v p99 %v, want both in the 1.5 s deliveries' bucket: one outlier in a hundred must not move them", st.DeliveryP50, st.DeliveryP99)
		}
	}
	deliver(time.Now().AddDate(-10, 0, 0))
	deliver(time.Unix(0, 0))
	if p99 := r.tel.Stats().DeliveryP99; p99 != 10*time.Second {
		t.Errorf("p99 with 3%% of outliers = %v, want the overflow bucket's edge, 10s", p99)
	}
}

func TestQuantileStaysInItsBucket(t *testing.T) {
	counts := make([]uint64, len(itel.DurationBuckets)+1)
	counts[6] = 100 // (0.5 ms, 1 ms]
	for _, q := range []float64{0.01, 0.5, 0.99, 1} {
		if got := itel.Quantile(counts, q); got <= 500*time.Microsecond || got > time.Millisecond {
			t.Errorf("q%v = %v, outside its bucket", q, got)
		}
	}
	counts[len(counts)-1] = 1000 // over 10 s
	if got := itel.Quantile(counts, 0.99); got != 10*time.Second {
		t.Errorf("overflow quantile %v", got)
	}
	if got := itel.Quantile(make([]uint64, len(counts)), 0.5); got != 0 {
		t.Errorf("empty %v", got)
	}
}

// The counters are observable instruments; their callback stays after the
// bus is done with its telemetry, so a reader that collects last still
// finds every number, and a private group's series folds into _ended.
func TestCountersAfterTheBusIsDone(t *testing.T) {
	r := newRig(t, telemetry.SystemMemory)
	private := r.tel.Subscription("orders", "orders.sub-9", "sub-9", true)
	consume := event.Chain(nop, private.Consume, private.Process)
	for range 3 {
		e := event.New("orders", 1)
		_ = r.emit(context.Background(), e, nop)
		_ = consume(context.Background(), e)
	}
	private.Forget()
	st := r.tel.Stats()
	ms := collectMetrics(t, r.rd)
	if n, ok := attrValue(ms[telemetry.MetricConsumedMessages], "messaging.consumer.group.name", telemetry.EndedPrivateGroups); !ok || n != 3 {
		t.Errorf("ended private groups: %d %v", n, ok)
	}
	if len(st.Rows) != 2 || st.Rows[1].Group != telemetry.EndedPrivateGroups || st.Rows[1].Delivered != 3 || st.Rows[1].Succeeded != 3 {
		t.Errorf("rows %+v", st.Rows)
	}
	if _, ok := ms[telemetry.MetricInFlight]; !ok {
		t.Error("in_flight not reported")
	}
}

// Names, units and descriptions of the messaging metrics are the
// conventions' own.
func TestMessagingMetricNames(t *testing.T) {
	for _, c := range []struct{ ours, conv, unit, desc string }{
		{telemetry.MetricSentMessages, messagingconv.ClientSentMessages{}.Name(), messagingconv.ClientSentMessages{}.Unit(), messagingconv.ClientSentMessages{}.Description()},
		{telemetry.MetricConsumedMessages, messagingconv.ClientConsumedMessages{}.Name(), messagingconv.ClientConsumedMessages{}.Unit(), messagingconv.ClientConsumedMessages{}.Description()},
		{telemetry.MetricOperationDuration, messagingconv.ClientOperationDuration{}.Name(), messagingconv.ClientOperationDuration{}.Unit(), messagingconv.ClientOperationDuration{}.Description()},
		{telemetry.MetricProcessDuration, messagingconv.ProcessDuration{}.Name(), messagingconv.ProcessDuration{}.Unit(), messagingconv.ProcessDuration{}.Description()},
	} {
		if c.ours != c.conv {
			t.Errorf("%s is %s in the conventions", c.ours, c.conv)
		}
	}
	r := newRig(t, telemetry.SystemMemory)
	e := event.New("orders", 1)
	_ = r.emit(context.Background(), e, nop)
	_ = event.Chain(nop, r.sub.Consume, r.sub.Process)(context.Background(), e)
	ms := collectMetrics(t, r.rd)
	for name, conv := range map[string]struct{ unit, desc string }{
		telemetry.MetricSentMessages:      {messagingconv.ClientSentMessages{}.Unit(), messagingconv.ClientSentMessages{}.Description()},
		telemetry.MetricConsumedMessages:  {messagingconv.ClientConsumedMessages{}.Unit(), messagingconv.ClientConsumedMessages{}.Description()},
		telemetry.MetricOperationDuration: {messagingconv.ClientOperationDuration{}.Unit(), messagingconv.ClientOperationDuration{}.Description()},
		telemetry.MetricProcessDuration:   {messagingconv.ProcessDuration{}.Unit(), messagingconv.ProcessDuration{}.Description()},
	} {
		if m := ms[name]; m.Unit != conv.unit || m.Description != conv.desc {
			t.Errorf("%s: unit %q description %q", name, m.Unit, m.Description)
		}
	}
}

type codedErr struct{}

func (codedErr) Error() string     { return "coded" }
func (codedErr) ErrorType() string { return "E_CODED" }

type myErr struct{}

func (*myErr) Error() string { return "mine" }

func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "_OTHER"},
		{errors.New("x"), "*errors.errorString"},
		{fmt.Errorf("a: %w", &myErr{}), "*telemetry_test.myErr"},
		{middleware.Permanent(&myErr{}), "*telemetry_test.myErr"},
		{fmt.Errorf("a: %w", middleware.Permanent(fmt.Errorf("b: %w", &myErr{}))), "*telemetry_test.myErr"},
		{fmt.Errorf("a: %w", codedErr{}), "E_CODED"},
		{middleware.Permanent(codedErr{}), "E_CODED"},
		{&middleware.PanicError{Value: "x"}, "*middleware.PanicError"},
		{&os.PathError{Op: "open", Err: os.ErrNotExist}, "*fs.PathError"},
	} {
		if got := itel.ErrorType(tc.err); got != tc.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// A Telemetry made over the otel globals before an SDK is installed starts
// recording once one is: the placeholder is checked at each event. (This
// test installs global providers; it runs last in this package.)
func TestGlobalsInstalledLater(t *testing.T) {
	if !isGlobalPlaceholder(otel.GetTracerProvider()) || !isGlobalPlaceholder(otel.GetMeterProvider()) {
		t.Skip("the otel globals are set already")
	}
	c := newChains(t, itel.Config{History: 10, Stats: true}, nop)
	_ = c.run(context.Background(), event.New("orders", 1))
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	e := event.New("orders", 1)
	_ = c.run(context.Background(), e)
	if n := len(sr.Ended()); n != 2 {
		t.Errorf("%d spans after the SDK was installed, want send and process", n)
	}
	if got := c.tel.Recent(1); got[0].TraceID != sr.Ended()[1].SpanContext().TraceID().String() {
		t.Errorf("history entry %+v lacks the span's trace id", got[0])
	}
	ms := collectMetrics(t, rd)
	if ok, _, _ := histPoints(ms[telemetry.MetricProcessDuration]); ok != 1 {
		t.Errorf("process duration recorded %d times after the SDK was installed, want 1", ok)
	}
	// Every Telemetry of this package's tests that used the globals reports
	// now, under the same attributes: their sum includes this one's two.
	if n, _ := sums(ms[telemetry.MetricConsumedMessages]); n < 2 || c.tel.Stats().Delivered != 2 {
		t.Errorf("consumed = %d, stats %d: the counters counted before the SDK came too", n, c.tel.Stats().Delivered)
	}
}

// The counters' callback, which stays with the MeterProvider, keeps the
// counters but not the bus's history: a bus dropped after Close costs the
// provider its counters only.
func TestCallbackDoesNotKeepTheHistory(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	freed := make(chan struct{})
	func() {
		c := newChains(t, itel.Config{MeterProvider: mp, History: 1000, Stats: true}, nop)
		_ = c.run(context.Background(), event.New("orders", 1))
		itel.OnHistoryFreed(c.tel, func() { close(freed) })
	}()
	for i := 0; ; i++ {
		runtime.GC()
		select {
		case <-freed:
		default:
			if i == 20 {
				t.Fatal("the history is still referenced")
			}
			time.Sleep(time.Millisecond)
			continue
		}
		break
	}
	if n, _ := sums(collectMetrics(t, rd)[telemetry.MetricConsumedMessages]); n != 1 {
		t.Errorf("consumed = %d after the bus was dropped, want 1", n)
	}
}
