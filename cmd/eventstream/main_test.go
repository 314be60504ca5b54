package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

// cli runs the command with args and returns its exit code and output.
func cli(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageExitCodes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{nil, exitUsage, "usage: eventstream"},
		{[]string{"help"}, exitOK, "usage: eventstream"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"list"}, exitUsage, "-topic is required"},
		{[]string{"replay", "-topic", "orders", "-since", "last tuesday"}, exitUsage, "want an RFC 3339 time or a duration"},
		{[]string{"replay", "-topic", "orders", "-limit", "-1"}, exitUsage, "must not be negative"},
		{[]string{"tail", "-topic", "orders", "-no-such-flag"}, exitUsage, "flag provided but not defined"},
		{[]string{"list", "-topic", "orders", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"list", "-h"}, exitOK, "-error-type"},
	} {
		code, _, stderr := cli(t, ctx, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.says)
		}
	}
}

func TestUnreachableBrokerExitCode(t *testing.T) {
	code, _, stderr := cli(t, context.Background(), "list", "-brokers", "127.0.0.1:1", "-topic", "orders")
	if code != exitKafka || !strings.Contains(stderr, "kafka") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// service is the application whose dead letters the tool works on: a
// handler of group billing that fails for good until fixed, and a
// recording tracer so that events carry trace context.
type service struct {
	bus    eventstream.EventBus
	rec    *tracetest.SpanRecorder
	broken atomic.Bool
	mu     sync.Mutex
	got    []*eventstream.Event
}

func newService(t *testing.T, brokers []string, topic string) *service {
	s := &service{rec: tracetest.NewSpanRecorder()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := eventstream.DefaultDistributedConfig(brokers)
	cfg.Kafka.HeartbeatInterval = 100 * time.Millisecond
	cfg.Kafka.CommitInterval = 200 * time.Millisecond
	bus, err := eventstream.New(cfg, eventstream.WithTracerProvider(tp), eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	s.bus = bus
	s.broken.Store(true)
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if s.broken.Load() {
			return eventstream.Permanent(errors.New("declined: card expired"))
		}
		s.mu.Lock()
		s.got = append(s.got, e)
		s.mu.Unlock()
		return nil
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *service) handled() []*eventstream.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// toolScenario: dead letters listed (table and JSON), a dry run, a replay
// with progress, then nothing left; tail shows events with their trace ids.
func toolScenario(t *testing.T, brokers []string, topic string) {
	ctx := context.Background()
	b := strings.Join(brokers, ",")
	svc := newService(t, brokers, topic)
	for i := range 3 {
		if err := svc.bus.Emit(ctx, topic, map[string]any{"order": i}); err != nil {
			t.Fatal(err)
		}
	}
	var dls []map[string]any
	waitFor(t, "three dead letters listed", func() bool {
		code, stdout, stderr := cli(t, ctx, "list", "-brokers", b, "-topic", topic, "-json")
		if code != exitOK {
			t.Fatalf("list: exit %d: %s", code, stderr)
		}
		dls = nil
		for line := range strings.Lines(stdout) {
			var d map[string]any
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("list -json line %q: %v", line, err)
			}
			dls = append(dls, d)
		}
		return len(dls) == 3
	})
	traces := map[string]bool{}
	for _, s := range svc.rec.Ended() {
		traces[s.SpanContext().TraceID().String()] = true
	}
	for _, d := range dls {
		if d["group"] != "billing" || d["attempts"] != 1.0 || !strings.Contains(d["reason"].(string), "card expired") || !traces[d["trace_id"].(string)] {
			t.Fatalf("dead letter %v", d)
		}
	}
	code, stdout, _ := cli(t, ctx, "list", "-brokers", b, "-topic", topic, "-group", "billing")
	if code != exitOK || !strings.Contains(stdout, "ERROR TYPE") || strings.Count(stdout, "card expired") != 3 || !strings.Contains(stdout, dls[0]["trace_id"].(string)) {
		t.Fatalf("list table: %d\n%s", code, stdout)
	}
	if code, stdout, _ = cli(t, ctx, "list", "-brokers", b, "-topic", topic, "-group", "audit"); code != exitOK || strings.Contains(stdout, "card expired") {
		t.Fatalf("list of another group: %d\n%s", code, stdout)
	}

	code, stdout, stderr := cli(t, ctx, "replay", "-brokers", b, "-topic", topic, "-dry-run")
	if code != exitOK || strings.Count(stdout, "would replay") != 3 || !strings.Contains(stderr, "would replay 3, skipped 0, failed 0") {
		t.Fatalf("dry run: %d\n%s\n%s", code, stdout, stderr)
	}
	svc.broken.Store(false)
	code, _, stderr = cli(t, ctx, "replay", "-brokers", b, "-topic", topic, "-progress", "1ns")
	if code != exitOK || !strings.Contains(stderr, "replayed 3, skipped 0, failed 0") {
		t.Fatalf("replay: %d\n%s", code, stderr)
	}
	waitFor(t, "the three replayed events handled", func() bool { return len(svc.handled()) == 3 })
	for _, e := range svc.handled() {
		if e.Header(eventstream.HeaderReplayCount) != "1" {
			t.Fatalf("replayed event headers %v", e.Headers)
		}
	}
	if code, _, stderr = cli(t, ctx, "replay", "-brokers", b, "-topic", topic); code != exitOK || !strings.Contains(stderr, "replayed 0, skipped 0, failed 0") {
		t.Fatalf("second replay: %d\n%s", code, stderr)
	}

	// tail from the beginning: the three events and their three replays,
	// each with the trace id of its send.
	code, stdout, stderr = cli(t, ctx, "tail", "-brokers", b, "-topic", topic, "-from-beginning", "-n", "6")
	if code != exitOK || len(slices.Collect(strings.Lines(stdout))) != 6 {
		t.Fatalf("tail: %d\n%s\n%s", code, stdout, stderr)
	}
	traced := 0
	for line := range strings.Lines(stdout) {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[5], "trace=") {
			t.Fatalf("tail line %q", line)
		}
		if traces[strings.TrimPrefix(f[5], "trace=")] {
			traced++
		}
	}
	// The replays were sent by the tool, which records no spans here (no
	// OTLP endpoint): they carry no trace context of their own.
	if traced != 3 {
		t.Fatalf("tail: %d lines with the trace id of their send, want 3:\n%s", traced, stdout)
	}
}

func TestToolKfake(t *testing.T) {
	toolScenario(t, eventstreamtest.KafkaCluster(t), "orders")
}

func TestToolRealKafka(t *testing.T) {
	brokers := eventstreamtest.RealKafkaBrokers(t)
	toolScenario(t, brokers, "cli-"+strconv.FormatInt(time.Now().UnixNano(), 36))
}

// A dead letter that cannot be replayed makes the exit code 1, and stays:
// the next replay meets it again. Here the original topic refuses records
// as large as the dead letter's.
func TestReplayFailureExitCode(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	small := "200"
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, -1, map[string]*string{"max.message.bytes": &small}, "orders"); err != nil {
		t.Fatal(err)
	}
	svc := newService(t, brokers, "orders")
	if err := svc.bus.Emit(context.Background(), "orders.dlq", strings.Repeat("x", 1000), eventstream.WithHeaders(map[string]string{
		eventstream.HeaderDeadLetterTopic: "orders", eventstream.HeaderDeadLetterID: "x1",
	})); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		code, _, stderr := cli(t, context.Background(), "replay", "-brokers", strings.Join(brokers, ","), "-topic", "orders")
		if code != exitFailures || !strings.Contains(stderr, "not replayed: event x1 of orders") || !strings.Contains(stderr, "replayed 0, skipped 0, failed 1") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	}
}
