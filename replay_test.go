package eventstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/history"
)

// Dead letters put back: the same scenario in memory mode, on kfake and
// on a real broker.

// seen records what a handler was given: ids and replay counts, in order.
type seen struct {
	mu     sync.Mutex
	ids    []string
	counts []string
}

func (s *seen) add(e *eventstream.Event) {
	s.mu.Lock()
	s.ids = append(s.ids, e.ID)
	s.counts = append(s.counts, e.Header(eventstream.HeaderReplayCount))
	s.mu.Unlock()
}

func (s *seen) snapshot() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids), slices.Clone(s.counts)
}

func (s *seen) has(id string) bool {
	ids, _ := s.snapshot()
	return slices.Contains(ids, id)
}

// replayScenario: three events fail for good, are dead-lettered, listed
// with their details, then replayed once the handler is fixed — the first
// with a limit of one, the rest by a second bus (another process, in
// Kafka mode), which resumes where the first stopped. Each is handled once
// more, with its id and a replay count of 1; a third replay finds nothing.
func replayScenario(t *testing.T, newBus func(t *testing.T) eventstream.EventBus, topic string) {
	ctx := context.Background()
	dlq := eventstream.DefaultDeadLetterTopic(topic)
	bus := newBus(t)
	var broken atomic.Bool
	broken.Store(true)
	handled := &seen{}
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		if broken.Load() {
			return eventstream.Permanent(errors.New("declined: card expired"))
		}
		handled.add(e)
		return nil
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := bus.Emit(ctx, topic, map[string]any{"order": i}, eventstream.WithKey("k"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	var dls []eventstream.DeadLetter
	waitFor(t, "three dead letters listed", 30*time.Second, func() bool {
		var err error
		dls, err = eventstream.ListDeadLetters(ctx, bus, dlq, eventstream.DeadLetterFilter{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(dls) == 3
	})
	var ids []string
	for _, d := range dls {
		if d.Topic != topic || d.DeadLetterTopic != dlq || d.Group != "billing" || d.Attempts != 1 ||
			!strings.Contains(d.Reason, "card expired") || d.ErrorType == "" || d.ID == "" || d.ReplayCount != 0 || d.Time.IsZero() {
			t.Fatalf("dead letter: %+v", d)
		}
		var data map[string]any
		if err := json.Unmarshal([]byte(d.Data), &data); err != nil || data["order"] == nil {
			t.Fatalf("dead letter data %q: %v", d.Data, err)
		}
		ids = append(ids, d.ID)
	}
	if got, err := eventstream.ListDeadLetters(ctx, bus, dlq, eventstream.DeadLetterFilter{IDs: ids[:1]}, 0); err != nil || len(got) != 1 || got[0].ID != ids[0] {
		t.Fatalf("list by id: %v, %v", got, err)
	}
	if got, err := eventstream.ListDeadLetters(ctx, bus, dlq, eventstream.DeadLetterFilter{}, 1); err != nil || len(got) != 1 || got[0].Time.Before(dls[1].Time) || got[0].Time.Before(dls[2].Time) {
		t.Fatalf("list the newest one: %v, %v", got, err)
	}
	if got, err := eventstream.ListDeadLetters(ctx, bus, dlq, eventstream.DeadLetterFilter{ErrorType: "no such type"}, 0); err != nil || len(got) != 0 {
		t.Fatalf("list by another error type: %v, %v", got, err)
	}

	// A dry run replays nothing and moves nothing.
	var listed []string
	res, err := eventstream.Replay(ctx, bus, dlq, eventstream.DeadLetterFilter{}, eventstream.ReplayDryRun(),
		eventstream.ReplayObserver(func(d eventstream.DeadLetter, o eventstream.ReplayOutcome, err error) {
			if o == eventstream.ReplayOutcomeReplayed {
				listed = append(listed, d.ID)
			}
		}))
	if err != nil || res != (eventstream.ReplayResult{Replayed: 3, DryRun: true}) || len(listed) != 3 {
		t.Fatalf("dry run: %+v, %v, %v", res, listed, err)
	}

	broken.Store(false)
	res, err = eventstream.Replay(ctx, bus, dlq, eventstream.DeadLetterFilter{}, eventstream.ReplayLimit(1))
	if err != nil || res.Replayed != 1 || res.Failed != 0 {
		t.Fatalf("first replay: %+v, %v", res, err)
	}
	other := newBus(t) // another process, in Kafka mode: it resumes where the first stopped
	res, err = eventstream.Replay(ctx, other, dlq, eventstream.DeadLetterFilter{})
	if err != nil || res.Replayed != 2 || res.Failed != 0 {
		t.Fatalf("second replay: %+v, %v", res, err)
	}
	waitFor(t, "three replayed events handled", 30*time.Second, func() bool {
		got, _ := handled.snapshot()
		return len(got) == 3
	})
	got, counts := handled.snapshot()
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("handled %v, want the dead letters' ids %v", got, ids)
	}
	for _, c := range counts {
		if c != "1" {
			t.Fatalf("replay counts %v, want 1 each", counts)
		}
	}
	res, err = eventstream.Replay(ctx, bus, dlq, eventstream.DeadLetterFilter{})
	if err != nil || res.Replayed != 0 || res.Failed != 0 {
		t.Fatalf("third replay: %+v, %v", res, err)
	}
}

// replayToGroupScenario: two groups dead-letter the same event; a replay
// filtered to one group's dead letter and aimed at it reaches that group
// only (the other sees a later event of the same key, and not the replay).
func replayToGroupScenario(t *testing.T, newBus func(t *testing.T) eventstream.EventBus, topic string) {
	ctx := context.Background()
	dlq := eventstream.DefaultDeadLetterTopic(topic)
	bus := newBus(t)
	var broken atomic.Bool
	broken.Store(true)
	billing, audit := &seen{}, &seen{}
	for group, s := range map[string]*seen{"billing": billing, "audit": audit} {
		if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
			if broken.Load() {
				return eventstream.Permanent(errors.New("declined"))
			}
			s.add(e)
			return nil
		}, eventstream.WithConsumerGroup(group)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Emit(ctx, topic, "first", eventstream.WithKey("k")); err != nil {
		t.Fatal(err)
	}
	var dls []eventstream.DeadLetter
	waitFor(t, "two dead letters", 30*time.Second, func() bool {
		dls, _ = eventstream.ListDeadLetters(ctx, bus, dlq, eventstream.DeadLetterFilter{}, 0)
		return len(dls) == 2
	})
	broken.Store(false)
	res, err := eventstream.Replay(ctx, bus, dlq, eventstream.DeadLetterFilter{Group: "billing"}, eventstream.ReplayToGroup("billing"))
	if err != nil || res.Replayed != 1 || res.Skipped != 1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if err := bus.Emit(ctx, topic, "marker", eventstream.WithKey("k")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "billing handles the replay", 30*time.Second, func() bool { return billing.has(dls[0].ID) })
	waitFor(t, "audit handles the marker", 30*time.Second, func() bool {
		ids, _ := audit.snapshot()
		return len(ids) == 1
	})
	if audit.has(dls[0].ID) {
		t.Fatal("the replay aimed at billing reached audit")
	}
}

func memoryReplayBus(t *testing.T) eventstream.EventBus {
	b := quietBus(t, eventstream.DefaultConfig())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestReplayMemory(t *testing.T) {
	// One bus: memory mode's dead letters live in the bus that wrote them.
	b := memoryReplayBus(t)
	replayScenario(t, func(*testing.T) eventstream.EventBus { return b }, "orders")
}

func TestReplayToGroupMemory(t *testing.T) {
	replayToGroupScenario(t, memoryReplayBus, "orders")
}

func kafkaReplayBus(brokers []string) func(t *testing.T) eventstream.EventBus {
	return func(t *testing.T) eventstream.EventBus {
		return newKafkaBus(t, brokers, nil, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	}
}

func TestReplayKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	replayScenario(t, kafkaReplayBus(brokers), "orders")
}

func TestReplayToGroupKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	replayToGroupScenario(t, kafkaReplayBus(brokers), "orders")
}

func TestKafkaRealReplay(t *testing.T) {
	brokers := eventstreamtest.RealKafkaBrokers(t)
	topic := "replay-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	replayScenario(t, kafkaReplayBus(brokers), topic)
	replayToGroupScenario(t, kafkaReplayBus(brokers), topic+"-g")
}

// A replayed event's send span starts a trace of its own (here: no span in
// the caller's ctx) and links to the dead letter's, which is the original
// event's trace.
func TestReplaySendSpanLinksToDeadLetterTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	bus := quietBus(t, eventstream.DefaultConfig(), eventstream.WithTracerProvider(tp))
	defer bus.Close()
	var broken atomic.Bool
	broken.Store(true)
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		if broken.Load() {
			return eventstream.Permanent(errors.New("declined"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	var dls []eventstream.DeadLetter
	waitFor(t, "a dead letter", 10*time.Second, func() bool {
		dls, _ = eventstream.ListDeadLetters(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0)
		return len(dls) == 1
	})
	broken.Store(false)
	if res, err := eventstream.Replay(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}); err != nil || res.Replayed != 1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	var sends []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "send orders" {
			sends = append(sends, s)
		}
	}
	if len(sends) != 2 {
		t.Fatalf("want the original send and the replay's, have %d", len(sends))
	}
	orig, replay := sends[0], sends[1]
	if dls[0].TraceID != orig.SpanContext().TraceID().String() {
		t.Fatalf("dead letter's trace id %s, original send's %s", dls[0].TraceID, orig.SpanContext().TraceID())
	}
	if replay.SpanContext().TraceID() == orig.SpanContext().TraceID() || replay.Parent().IsValid() {
		t.Fatal("the replay's send span should start a trace of its own")
	}
	links := replay.Links()
	if len(links) != 1 || links[0].SpanContext.TraceID() != orig.SpanContext().TraceID() {
		t.Fatalf("replay send span links %v, want one to trace %s", links, orig.SpanContext().TraceID())
	}
}

// A replay that cannot re-emit (the bus is closed) fails, says so with a
// typed error, and keeps the dead letter.
func TestReplayFailureKeepsDeadLetter(t *testing.T) {
	bus := quietBus(t, eventstream.DefaultConfig())
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		return eventstream.Permanent(errors.New("declined"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead letter", 10*time.Second, func() bool {
		dls, _ := eventstream.ListDeadLetters(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0)
		return len(dls) == 1
	})
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := eventstream.Replay(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{})
	var re *eventstream.ReplayError
	if res.Failed != 1 || !errors.Is(err, eventstream.ErrReplay) || !errors.As(err, &re) || !errors.Is(err, eventstream.ErrClosed) || re.Topic != "orders" {
		t.Fatalf("replay on a closed bus: %+v, %v", res, err)
	}
	if dls, _ := eventstream.ListDeadLetters(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0); len(dls) != 1 {
		t.Fatalf("the dead letter whose replay failed is gone: %v", dls)
	}
}

// On Kafka, a dead letter whose replay fails is not committed past: the
// next replay meets it again.
func TestReplayFailureIsNotCommittedKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	bus := newKafkaBus(t, brokers, nil, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	ctx := context.Background()
	// A dead letter whose original topic cannot be written to.
	if err := bus.Emit(ctx, "orders.dlq", 1, eventstream.WithHeaders(map[string]string{
		eventstream.HeaderDeadLetterTopic: "not a topic!", eventstream.HeaderDeadLetterID: "x1",
	})); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, err := eventstream.Replay(ctx, bus, "orders.dlq", eventstream.DeadLetterFilter{})
		if res.Failed != 1 || res.Replayed != 0 || !errors.Is(err, eventstream.ErrReplay) || !errors.Is(err, eventstream.ErrInvalidTopic) {
			t.Fatalf("replay: %+v, %v", res, err)
		}
	}
}

// On Kafka, a filter's skipped dead letters are committed past (for that
// replay group); another group still sees them.
func TestReplaySkippedAreCommittedKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	bus := newKafkaBus(t, brokers, nil, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	ctx := context.Background()
	if err := bus.Emit(ctx, "orders.dlq", 1, eventstream.WithHeaders(map[string]string{
		eventstream.HeaderDeadLetterTopic: "orders", eventstream.HeaderDeadLetterID: "x1", eventstream.HeaderDeadLetterErrorType: "a",
	})); err != nil {
		t.Fatal(err)
	}
	res, err := eventstream.Replay(ctx, bus, "orders.dlq", eventstream.DeadLetterFilter{ErrorType: "b"})
	if err != nil || res != (eventstream.ReplayResult{Skipped: 1}) {
		t.Fatalf("filtered replay: %+v, %v", res, err)
	}
	if res, err = eventstream.Replay(ctx, bus, "orders.dlq", eventstream.DeadLetterFilter{}); err != nil || res != (eventstream.ReplayResult{}) {
		t.Fatalf("same group again: %+v, %v", res, err)
	}
	res, err = eventstream.Replay(ctx, bus, "orders.dlq", eventstream.DeadLetterFilter{}, eventstream.ReplayConsumerGroup("second-look"))
	if err != nil || res != (eventstream.ReplayResult{Replayed: 1}) {
		t.Fatalf("another group: %+v, %v", res, err)
	}
}

func TestReplayStoreBoundAndOff(t *testing.T) {
	cfg := eventstream.DefaultConfig()
	cfg.Memory.DeadLetterStoreSize = 2
	bus := quietBus(t, cfg)
	defer bus.Close()
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		return eventstream.Permanent(errors.New("declined"))
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := bus.Emit(context.Background(), "orders", i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three dead letters", 10*time.Second, func() bool {
		return bus.(eventstream.MemoryEventBus).GetStats().DeadLettered == 3
	})
	dls, err := eventstream.ListDeadLetters(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0)
	if err != nil || len(dls) != 2 || dls[0].Data != "2" || dls[1].Data != "1" {
		t.Fatalf("store of two: %+v, %v", dls, err)
	}

	for name, b := range map[string]eventstream.EventBus{
		"WithoutDeadLetter": quietBus(t, eventstream.DefaultConfig(), eventstream.WithoutDeadLetter()),
		"DisableDeadLetterStore": quietBus(t, &eventstream.Config{Memory: &eventstream.MemoryConfig{
			DisableDeadLetterStore: true}}),
	} {
		_, err := eventstream.Replay(context.Background(), b, "orders.dlq", eventstream.DeadLetterFilter{})
		var ue *eventstream.ReplayUnsupportedError
		if !errors.Is(err, eventstream.ErrReplayUnsupported) || !errors.As(err, &ue) {
			t.Errorf("%s: %v", name, err)
		}
		_ = b.Close()
	}
	if _, err := eventstream.New(&eventstream.Config{Memory: &eventstream.MemoryConfig{DeadLetterStoreSize: -1}}); !errors.Is(err, eventstream.ErrInvalidConfig) {
		t.Fatalf("negative store size: %v", err)
	}
}

// The debug page lists dead letters with filters; replaying from it is a
// POST that answers 403 unless the handler was built with
// WithDeadLetterReplay.
func TestDebugPageDeadLetters(t *testing.T) {
	bus := quietBus(t, eventstream.DefaultConfig())
	defer bus.Close()
	var broken atomic.Bool
	broken.Store(true)
	handled := &seen{}
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		if broken.Load() {
			return eventstream.Permanent(errors.New("declined"))
		}
		handled.add(e)
		return nil
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead letter", 10*time.Second, func() bool {
		return bus.(eventstream.MemoryEventBus).GetStats().DeadLettered == 1
	})
	off := httptest.NewServer(eventstream.DebugHandler(bus))
	defer off.Close()
	on := httptest.NewServer(eventstream.DebugHandler(bus, history.WithDeadLetterReplay()))
	defer on.Close()

	var dls []history.DeadLetter
	getJSON(t, off.URL+"/deadletters?format=json&topic=orders&group=billing", &dls)
	if len(dls) != 1 || dls[0].Topic != "orders" || dls[0].Group != "billing" {
		t.Fatalf("dead letters: %+v", dls)
	}
	getJSON(t, off.URL+"/deadletters?format=json&group=audit", &dls)
	if len(dls) != 0 {
		t.Fatalf("group filter: %+v", dls)
	}
	page := getBody(t, off.URL+"/deadletters")
	if !strings.Contains(page, dls0ID(t, off.URL)) || !strings.Contains(page, "Replay from this page is off") {
		t.Fatalf("page: %s", page)
	}

	resp, err := http.PostForm(off.URL+"/deadletters/replay", url.Values{"topic": {"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("replay without the option: %d", resp.StatusCode)
	}
	broken.Store(false)
	resp, err = http.PostForm(on.URL+"/deadletters/replay", url.Values{"topic": {"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	var res history.ReplayResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 200 || res.Replayed != 1 {
		t.Fatalf("replay: %d %+v %v", resp.StatusCode, res, err)
	}
	resp.Body.Close()
	waitFor(t, "the replay handled", 10*time.Second, func() bool { ids, _ := handled.snapshot(); return len(ids) == 1 })
	if p := getBody(t, on.URL+"/deadletters"); !strings.Contains(p, "choose a topic to replay") {
		t.Fatalf("page with replay on, no topic chosen: %s", p)
	}
	if p := getBody(t, on.URL+"/deadletters?topic=orders"); !strings.Contains(p, `action="deadletters/replay"`) {
		t.Fatalf("page with replay on: %s", p)
	}
}

func dls0ID(t *testing.T, base string) string {
	var dls []history.DeadLetter
	getJSON(t, base+"/deadletters?format=json", &dls)
	if len(dls) == 0 {
		t.Fatal("no dead letters")
	}
	return dls[0].ID
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getBody(t, u)), v); err != nil {
		t.Fatal(err)
	}
}

// Kafka mode's dead-letter view reads the dead-letter topics of the
// subscribed topics.
func TestDebugPageDeadLettersKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	bus := newKafkaBus(t, brokers, nil, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		return eventstream.Permanent(errors.New("declined"))
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(eventstream.DebugHandler(bus))
	defer srv.Close()
	var dls []history.DeadLetter
	waitFor(t, "the dead letter on the page", 30*time.Second, func() bool {
		getJSON(t, srv.URL+"/deadletters?format=json", &dls)
		return len(dls) == 1
	})
	if d := dls[0]; d.Topic != "orders" || d.Group != "billing" || d.DeadLetterTopic != "orders.dlq" || d.Offset < 0 {
		t.Fatalf("dead letter: %+v", d)
	}
	getJSON(t, srv.URL+"/deadletters?format=json&error_type=none", &dls)
	if len(dls) != 0 {
		t.Fatalf("error type filter: %+v", dls)
	}
}

// A replay aimed at one group that fails again there is dead-lettered
// with the header, and that dead letter still reaches every subscriber
// of the dead-letter topic.
func TestReplayToGroupDeadLetterReachesEveryone(t *testing.T) {
	bus := memoryReplayBus(t)
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		return eventstream.Permanent(errors.New("declined"))
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	watched := &seen{}
	if _, err := bus.On("orders.dlq", func(ctx context.Context, e *eventstream.Event) error {
		watched.add(e)
		return nil
	}, eventstream.WithConsumerGroup("dlq-watch")); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first dead letter watched", 10*time.Second, func() bool { ids, _ := watched.snapshot(); return len(ids) == 1 })
	res, err := eventstream.Replay(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, eventstream.ReplayToGroup("billing"))
	if err != nil || res.Replayed != 1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	waitFor(t, "the replay's dead letter watched", 10*time.Second, func() bool { ids, _ := watched.snapshot(); return len(ids) == 2 })
	dls, _ := eventstream.ListDeadLetters(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0)
	if len(dls) != 1 || dls[0].ReplayCount != 1 {
		t.Fatalf("dead letters after the failed replay: %+v", dls)
	}
}

// The replay's send span links to the dead letter's trace on Kafka too,
// where that trace travels in the dead letter's headers.
func TestReplaySendSpanLinksKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	bus := newKafkaBus(t, brokers, nil, eventstream.WithTracerProvider(tp), eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	var broken atomic.Bool
	broken.Store(true)
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		if broken.Load() {
			return eventstream.Permanent(errors.New("declined"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	var dls []eventstream.DeadLetter
	waitFor(t, "a dead letter", 30*time.Second, func() bool {
		dls, _ = eventstream.ListDeadLetters(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0)
		return len(dls) == 1
	})
	broken.Store(false)
	if res, err := eventstream.Replay(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}); err != nil || res.Replayed != 1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	var sends []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "send orders" {
			sends = append(sends, s)
		}
	}
	if len(sends) != 2 || dls[0].TraceID != sends[0].SpanContext().TraceID().String() {
		t.Fatalf("sends %d, dead letter trace %s", len(sends), dls[0].TraceID)
	}
	links := sends[1].Links()
	if len(links) != 1 || links[0].SpanContext.TraceID() != sends[0].SpanContext().TraceID() || sends[1].SpanContext().TraceID() == sends[0].SpanContext().TraceID() {
		t.Fatalf("replay send span: trace %s, links %v", sends[1].SpanContext().TraceID(), links)
	}
}

// With replay on, a cross-site form post from a browser is still refused.
func TestDebugPageReplayRefusesCrossSite(t *testing.T) {
	bus := memoryReplayBus(t)
	srv := httptest.NewServer(eventstream.DebugHandler(bus, history.WithDeadLetterReplay()))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/deadletters/replay", strings.NewReader("topic=orders"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", resp.StatusCode)
	}
}

// A replayed event keeps its lineage: the causation id (the event whose
// handler emitted it) and the correlation id of its chain, in both modes.
func TestReplayKeepsLineage(t *testing.T) {
	for name, newBus := range map[string]func(t *testing.T) eventstream.EventBus{
		"memory": memoryReplayBus,
		"kfake":  kafkaReplayBus(eventstreamtest.KafkaCluster(t)),
	} {
		t.Run(name, func(t *testing.T) {
			bus := newBus(t)
			var broken atomic.Bool
			broken.Store(true)
			got := make(chan *eventstream.Event, 1)
			var orderID atomic.Value
			if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
				orderID.Store(e.ID)
				return bus.Emit(ctx, "invoices", "for "+e.ID)
			}, eventstream.WithConsumerGroup("billing")); err != nil {
				t.Fatal(err)
			}
			if _, err := bus.On("invoices", func(ctx context.Context, e *eventstream.Event) error {
				if broken.Load() {
					return eventstream.Permanent(errors.New("declined"))
				}
				got <- e
				return nil
			}, eventstream.WithConsumerGroup("mailer")); err != nil {
				t.Fatal(err)
			}
			if err := bus.Emit(context.Background(), "orders", 1, eventstream.WithCorrelationID("req-7")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a dead letter", 30*time.Second, func() bool {
				dls, _ := eventstream.ListDeadLetters(context.Background(), bus, "invoices.dlq", eventstream.DeadLetterFilter{}, 0)
				return len(dls) == 1
			})
			broken.Store(false)
			if res, err := eventstream.Replay(context.Background(), bus, "invoices.dlq", eventstream.DeadLetterFilter{}); err != nil || res.Replayed != 1 {
				t.Fatalf("replay: %+v, %v", res, err)
			}
			e := <-got
			if e.CorrelationID != "req-7" || e.CausationID != orderID.Load() {
				t.Fatalf("replayed event: correlation %q, causation %q (id %q)", e.CorrelationID, e.CausationID, e.ID)
			}
		})
	}
}

// A bus over an MQ adapter keeps its dead letters in the same store as
// memory mode, and replays them through the adapter.
func TestReplayMQAdapter(t *testing.T) {
	cfg := eventstream.DefaultConfig()
	cfg.Mode = eventstream.ModeDistributed
	cfg.MQ = newQueueAdapter(t)
	b := quietBus(t, cfg)
	t.Cleanup(func() { _ = b.Close() })
	replayScenario(t, func(*testing.T) eventstream.EventBus { return b }, "orders")
}

// A Kafka replay cut short by its context loses nothing: the next one
// replays what the first did not finish (some perhaps twice, with their
// ids).
func TestReplayCancelledResumesKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	bus := newKafkaBus(t, brokers, nil, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	handled := &seen{}
	if _, err := bus.On("orders", func(ctx context.Context, e *eventstream.Event) error {
		handled.add(e)
		return nil
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	const n = 1500 // more than Replay keeps under way at once
	for i := range n {
		if err := bus.Emit(context.Background(), "orders.dlq", i, eventstream.WithHeaders(map[string]string{
			eventstream.HeaderDeadLetterTopic: "orders", eventstream.HeaderDeadLetterID: "dl-" + strconv.Itoa(i),
		}), eventstream.WithAsync(nil)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the dead letters written", 30*time.Second, func() bool {
		dls, _ := eventstream.ListDeadLetters(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{}, 0)
		return len(dls) == n
	})
	ctx, cancel := context.WithCancel(context.Background())
	var outcomes atomic.Int32
	first, err := eventstream.Replay(ctx, bus, "orders.dlq", eventstream.DeadLetterFilter{}, eventstream.ReplayObserver(
		func(eventstream.DeadLetter, eventstream.ReplayOutcome, error) {
			if outcomes.Add(1) == 1 {
				cancel()
			}
		}))
	cancel()
	if !errors.Is(err, context.Canceled) || first.Replayed >= n {
		t.Fatalf("cancelled replay: %+v, %v", first, err)
	}
	second, err := eventstream.Replay(context.Background(), bus, "orders.dlq", eventstream.DeadLetterFilter{})
	if err != nil || first.Replayed+second.Replayed < n {
		t.Fatalf("second replay: %+v after %+v, %v", second, first, err)
	}
	waitFor(t, "every dead letter handled", 30*time.Second, func() bool {
		ids, _ := handled.snapshot()
		distinct := map[string]bool{}
		for _, id := range ids {
			distinct[id] = true
		}
		return len(distinct) == n
	})
	t.Logf("first replay %d, second %d, of %d", first.Replayed, second.Replayed, n)
}

// A dead letter written without its value (the broker refused the record's
// size) is skipped, never re-emitted as an empty event under the original's
// id; the observer learns where the value is.
func TestReplaySkipsValueOmittedKafka(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	bus := newKafkaBus(t, brokers, nil, eventstream.WithLogger(slog.New(slog.DiscardHandler)))
	ctx := context.Background()
	var emitted atomic.Int64
	if _, err := bus.On("big", func(context.Context, *eventstream.Event) error {
		emitted.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Emit(ctx, "big.dlq", nil, eventstream.WithHeaders(map[string]string{
		eventstream.HeaderDeadLetterTopic: "big", eventstream.HeaderDeadLetterID: "x1",
		eventstream.HeaderDeadLetterValueOmitted: "2097152",
		eventstream.HeaderDeadLetterPartition:    "2", eventstream.HeaderDeadLetterOffset: "41",
	})); err != nil {
		t.Fatal(err)
	}
	var why error
	res, err := eventstream.Replay(ctx, bus, "big.dlq", eventstream.DeadLetterFilter{},
		eventstream.ReplayObserver(func(d eventstream.DeadLetter, outcome eventstream.ReplayOutcome, err error) {
			if outcome == eventstream.ReplayOutcomeSkipped {
				why = err
			}
		}))
	if err != nil || res != (eventstream.ReplayResult{Skipped: 1}) {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	var vo *eventstream.ValueOmittedError
	if !errors.As(why, &vo) || vo.Topic != "big" || vo.Partition != 2 || vo.Offset != 41 || vo.Size != 2097152 {
		t.Fatalf("skip reason: %v", why)
	}
	list, err := eventstream.ListDeadLetters(ctx, bus, "big.dlq", eventstream.DeadLetterFilter{}, 0)
	if err != nil || len(list) != 1 || list[0].ValueOmitted != 2097152 || list[0].OriginalOffset != 41 {
		t.Fatalf("listed: %+v, %v", list, err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := emitted.Load(); n != 0 {
		t.Fatalf("%d events re-emitted to the original topic", n)
	}
}
