package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream"
)

// Exit codes, documented in the package comment.
const (
	exitOK          = 0
	exitFailures    = 1
	exitUsage       = 2
	exitKafka       = 3
	exitInterrupted = 130
)

const usage = `usage: eventstream <command> [flags]

commands:
  list    list the dead letters of a topic (reason, error type, attempts, trace id)
  replay  re-emit dead letters to their topic (-dry-run shows what would be)
  tail    follow a topic, showing each event with its trace id

Run "eventstream <command> -h" for a command's flags.
Exit codes: 0 done, 1 dead letters not replayed, 2 usage, 3 Kafka unreachable or unreadable, 130 interrupted.
`

// run is the whole command, for main and for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c := &command{name: args[0], stdout: stdout, stderr: stderr}
	switch c.name {
	case "list", "replay", "tail":
	default:
		fmt.Fprintf(stderr, "eventstream: unknown command %q\n\n%s", c.name, usage)
		return exitUsage
	}
	if err := c.parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "eventstream %s: %v\n", c.name, err)
		return exitUsage
	}
	switch c.name {
	case "list":
		return c.list(ctx)
	case "replay":
		return c.replay(ctx)
	default:
		return c.tail(ctx)
	}
}

// command holds one invocation's flags.
type command struct {
	name           string
	stdout, stderr io.Writer

	brokers, topic, dlq      string
	filter                   eventstream.DeadLetterFilter
	n, limit                 int
	asJSON, dryRun, fromBeg  bool
	toGroup, replayGroup     string
	progressEvery            time.Duration
	since, until, ids, group string
	errorType                string
}

func (c *command) parse(args []string) error {
	fs := flag.NewFlagSet("eventstream "+c.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	def := os.Getenv("EVENTSTREAM_KAFKA_BROKERS")
	if def == "" {
		def = "127.0.0.1:9092"
	}
	fs.StringVar(&c.brokers, "brokers", def, "Kafka seed brokers, comma-separated (default $EVENTSTREAM_KAFKA_BROKERS or 127.0.0.1:9092)")
	fs.StringVar(&c.topic, "topic", "", "the topic (required)")
	fs.BoolVar(&c.asJSON, "json", false, "one JSON object a line instead of a table")
	switch c.name {
	case "list", "replay":
		fs.StringVar(&c.dlq, "dlq", "", `the dead-letter topic (default "<topic>.dlq")`)
		fs.StringVar(&c.group, "group", "", "only dead letters of this consumer group")
		fs.StringVar(&c.errorType, "error-type", "", "only dead letters with this error type")
		fs.StringVar(&c.since, "since", "", "only dead letters written since (RFC 3339, or a duration ago such as 2h)")
		fs.StringVar(&c.until, "until", "", "only dead letters written before (RFC 3339, or a duration ago)")
		fs.StringVar(&c.ids, "id", "", "only these original event ids, comma-separated")
	}
	switch c.name {
	case "list":
		fs.IntVar(&c.n, "n", 100, "show at most n, newest first (0: all)")
	case "replay":
		fs.BoolVar(&c.dryRun, "dry-run", false, "replay nothing: list what would be replayed")
		fs.IntVar(&c.limit, "limit", 0, "replay at most this many (0: all)")
		fs.StringVar(&c.toGroup, "to-group", "", "deliver the replayed events to this consumer group only")
		fs.StringVar(&c.replayGroup, "replay-group", "", `consumer group recording the replay's progress (default "<dlq>.replay")`)
		fs.DurationVar(&c.progressEvery, "progress", 2*time.Second, "how often to report progress on stderr (0: never)")
	case "tail":
		fs.BoolVar(&c.fromBeg, "from-beginning", false, "start with the oldest event instead of the next one")
		fs.IntVar(&c.n, "n", 0, "stop after n events (0: until interrupted)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.topic == "" {
		return errors.New("-topic is required")
	}
	if c.dlq == "" {
		c.dlq = eventstream.DefaultDeadLetterTopic(c.topic)
	}
	if c.n < 0 || c.limit < 0 {
		return errors.New("-n and -limit must not be negative")
	}
	now := time.Now()
	for _, p := range []struct {
		name, v string
		t       *time.Time
	}{{"since", c.since, &c.filter.Since}, {"until", c.until, &c.filter.Until}} {
		if p.v == "" {
			continue
		}
		if d, err := time.ParseDuration(p.v); err == nil {
			*p.t = now.Add(-d)
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, p.v)
		if err != nil {
			return fmt.Errorf("-%s %q: want an RFC 3339 time or a duration", p.name, p.v)
		}
		*p.t = t
	}
	// Dead letters of any original topic may share a -dlq topic: the
	// original topic is a filter too.
	c.filter.Topic, c.filter.Group, c.filter.ErrorType = c.topic, c.group, c.errorType
	for id := range strings.SplitSeq(c.ids, ",") {
		if id = strings.TrimSpace(id); id != "" {
			c.filter.IDs = append(c.filter.IDs, id)
		}
	}
	return nil
}

// connect builds the bus: Kafka mode, quiet logs (warnings and worse on
// stderr), traces exported when OTLP is configured.
func (c *command) connect(tune func(*eventstream.Config)) (eventstream.EventBus, func(), error) {
	var brokers []string
	for b := range strings.SplitSeq(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	cfg := eventstream.DefaultDistributedConfig(brokers)
	cfg.Kafka.ClientID = "eventstream-cli"
	cfg.ShutdownTimeout = 10 * time.Second
	if tune != nil {
		tune(cfg)
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []eventstream.Option{eventstream.WithLogger(logger)}
	tp, flush, err := tracing()
	if err != nil {
		return nil, nil, err
	}
	if tp != nil {
		opts = append(opts, eventstream.WithTracerProvider(tp))
	}
	bus, err := eventstream.New(cfg, opts...)
	if err != nil {
		flush()
		return nil, nil, err
	}
	return bus, func() { _ = bus.Close(); flush() }, nil
}

// fail reports err and returns its exit code.
func (c *command) fail(ctx context.Context, err error) int {
	fmt.Fprintf(c.stderr, "eventstream %s: %v\n", c.name, err)
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case errors.Is(err, eventstream.ErrInvalidConfig), errors.Is(err, eventstream.ErrInvalidTopic):
		return exitUsage
	}
	return exitKafka
}

func (c *command) list(ctx context.Context) int {
	bus, closeBus, err := c.connect(nil)
	if err != nil {
		return c.fail(ctx, err)
	}
	defer closeBus()
	dls, err := eventstream.ListDeadLetters(ctx, bus, c.dlq, c.filter, c.n)
	if err != nil {
		return c.fail(ctx, err)
	}
	if c.asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, d := range dls {
			_ = enc.Encode(d)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAD-LETTERED\tTOPIC\tGROUP\tERROR TYPE\tATTEMPTS\tREPLAYS\tEVENT ID\tTRACE ID\tREASON")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), d.Topic, d.Group,
			dash(d.ErrorType), d.Attempts, d.ReplayCount, d.ID, dash(d.TraceID), oneLine(d.Reason))
	}
	_ = tw.Flush()
	fmt.Fprintf(c.stderr, "%d dead letter(s) in %s\n", len(dls), c.dlq)
	return exitOK
}

func (c *command) replay(ctx context.Context) int {
	bus, closeBus, err := c.connect(nil)
	if err != nil {
		return c.fail(ctx, err)
	}
	defer closeBus()
	var (
		mu      sync.Mutex
		counts  eventstream.ReplayResult
		enc     = json.NewEncoder(c.stdout)
		started = time.Now()
	)
	progress := func() {
		mu.Lock()
		r := counts
		mu.Unlock()
		fmt.Fprintf(c.stderr, "replay %s: %d replayed, %d skipped, %d failed (%s)\n",
			c.dlq, r.Replayed, r.Skipped, r.Failed, time.Since(started).Round(time.Millisecond))
	}
	stopProgress := make(chan struct{})
	var wg sync.WaitGroup
	if c.progressEvery > 0 {
		wg.Go(func() {
			t := time.NewTicker(c.progressEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					progress()
				case <-stopProgress:
					return
				}
			}
		})
	}
	opts := []eventstream.ReplayOption{eventstream.ReplayObserver(func(d eventstream.DeadLetter, o eventstream.ReplayOutcome, err error) {
		mu.Lock()
		switch o {
		case eventstream.ReplayOutcomeReplayed:
			counts.Replayed++
		case eventstream.ReplayOutcomeSkipped:
			counts.Skipped++
		case eventstream.ReplayOutcomeFailed:
			counts.Failed++
		}
		mu.Unlock()
		switch {
		case o == eventstream.ReplayOutcomeFailed:
			fmt.Fprintf(c.stderr, "not replayed: event %s of %s: %v\n", d.ID, d.Topic, err)
		case o == eventstream.ReplayOutcomeReplayed && c.asJSON:
			_ = enc.Encode(d)
		case o == eventstream.ReplayOutcomeReplayed && c.dryRun:
			fmt.Fprintf(c.stdout, "would replay %s to %s (group %s, %s, %d attempt(s), trace %s)\n", d.ID, d.Topic, d.Group, dash(d.ErrorType), d.Attempts, dash(d.TraceID))
		}
	})}
	if c.dryRun {
		opts = append(opts, eventstream.ReplayDryRun())
	}
	if c.limit > 0 {
		opts = append(opts, eventstream.ReplayLimit(c.limit))
	}
	if c.toGroup != "" {
		opts = append(opts, eventstream.ReplayToGroup(c.toGroup))
	}
	if c.replayGroup != "" {
		opts = append(opts, eventstream.ReplayConsumerGroup(c.replayGroup))
	}
	res, err := eventstream.Replay(ctx, bus, c.dlq, c.filter, opts...)
	close(stopProgress)
	wg.Wait()
	verb := "replayed"
	if res.DryRun {
		verb = "would replay"
	}
	fmt.Fprintf(c.stderr, "%s %d, skipped %d, failed %d\n", verb, res.Replayed, res.Skipped, res.Failed)
	switch {
	case errors.Is(err, eventstream.ErrReplay):
		fmt.Fprintf(c.stderr, "eventstream replay: %v\n", err)
		return exitFailures
	case err != nil:
		return c.fail(ctx, err)
	}
	return exitOK
}

func (c *command) tail(ctx context.Context) int {
	bus, closeBus, err := c.connect(func(cfg *eventstream.Config) {
		if c.fromBeg {
			cfg.Kafka.InitialOffset = eventstream.InitialOffsetEarliest
		}
	})
	if err != nil {
		return c.fail(ctx, err)
	}
	defer closeBus()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		seen int
		enc  = json.NewEncoder(c.stdout)
	)
	_, err = bus.On(c.topic, func(_ context.Context, e *eventstream.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if c.n > 0 && seen >= c.n {
			return nil
		}
		seen++
		traceID := traceIDOf(e)
		data := string(e.Raw)
		if e.Raw == nil {
			b, _ := json.Marshal(e.Data)
			data = string(b)
		}
		if c.asJSON {
			_ = enc.Encode(tailLine{ID: e.ID, Topic: e.Topic, Key: e.Key, Time: e.Time, Partition: e.Record.Partition,
				Offset: e.Record.Offset, TraceID: traceID, Headers: e.Headers, Data: json.RawMessage(jsonOrString(data))})
		} else {
			fmt.Fprintf(c.stdout, "%s %s p%d@%d id=%s key=%s trace=%s %s\n", e.Time.UTC().Format(time.RFC3339Nano), e.Topic,
				e.Record.Partition, e.Record.Offset, e.ID, dash(e.Key), dash(traceID), data)
		}
		if c.n > 0 && seen == c.n {
			cancel()
		}
		return nil
	})
	if err != nil {
		return c.fail(ctx, err)
	}
	fmt.Fprintf(c.stderr, "tailing %s (Ctrl-C to stop)\n", c.topic)
	<-ctx.Done()
	return exitOK
}

type tailLine struct {
	ID        string            `json:"id"`
	Topic     string            `json:"topic"`
	Key       string            `json:"key,omitempty"`
	Time      time.Time         `json:"time"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	TraceID   string            `json:"trace_id,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Data      json.RawMessage   `json:"data"`
}

// traceIDOf reads the W3C trace context the event travelled with.
func traceIDOf(e *eventstream.Event) string {
	if len(e.Headers) == 0 {
		return ""
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(e.Headers)))
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

func jsonOrString(s string) string {
	if json.Valid([]byte(s)) {
		return s
	}
	return strconv.Quote(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
