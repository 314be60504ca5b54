package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"libx.net/eventstream/event"
	"libx.net/eventstream/internal/eventmeta"
	"libx.net/eventstream/middleware"
)

func jsonLogger(buf *bytes.Buffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level}))
}

func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(buf)
	for dec.More() {
		var r map[string]any
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestLoggingFailure(t *testing.T) {
	var buf bytes.Buffer
	e := event.New("orders", nil)
	h := middleware.Logging(jsonLogger(&buf, slog.LevelDebug))(func(context.Context, *event.Event) error {
		return errBoom
	})
	if err := h(eventmeta.WithAttempt(context.Background(), 3), e); err != errBoom {
		t.Fatalf("err = %v, want the handler's error unchanged", err)
	}
	recs := records(t, &buf)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	want := map[string]any{"level": "WARN", "topic": "orders", "event_id": e.ID, "attempt": 3.0, "error": "boom"}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v (record %v)", k, r[k], v, r)
		}
	}
}

func TestLoggingPanic(t *testing.T) {
	var buf bytes.Buffer
	h := event.Chain(func(context.Context, *event.Event) error { panic("kaput") },
		middleware.Logging(jsonLogger(&buf, slog.LevelInfo)), middleware.Recover())
	_ = h(context.Background(), event.New("orders", nil))
	recs := records(t, &buf)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r["level"] != "ERROR" || r["error"] != "handler panicked: kaput" || r["attempt"] != 1.0 {
		t.Errorf("record = %v, want ERROR with the panic and attempt 1", r)
	}
	if stack, _ := r["stack"].(string); !strings.Contains(stack, "logging_test.go") {
		t.Errorf("stack %q does not show the panicking frame", stack)
	}
}

func TestLoggingSuccess(t *testing.T) {
	ok := func(context.Context, *event.Event) error { return nil }

	var buf bytes.Buffer
	e := event.New("orders", nil)
	_ = middleware.Logging(jsonLogger(&buf, slog.LevelDebug))(ok)(context.Background(), e)
	recs := records(t, &buf)
	if len(recs) != 1 || recs[0]["level"] != "DEBUG" || recs[0]["event_id"] != e.ID {
		t.Errorf("records = %v, want one DEBUG record for the event", recs)
	}

	buf.Reset()
	_ = middleware.Logging(jsonLogger(&buf, slog.LevelInfo))(ok)(context.Background(), e)
	if buf.Len() != 0 {
		t.Errorf("logged %q on success with Debug off, want nothing", buf.String())
	}
}

// ctxHandler records a value from the context of each record, as a trace-id
// handler would.
type ctxHandler struct {
	slog.Handler
	got *[]any
}

type traceKey struct{}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	*h.got = append(*h.got, ctx.Value(traceKey{}))
	return nil
}

func TestLoggingPassesContext(t *testing.T) {
	var got []any
	logger := slog.New(ctxHandler{slog.NewTextHandler(discard{}, nil), &got})
	h := middleware.Logging(logger)(func(context.Context, *event.Event) error { return errBoom })
	ctx := context.WithValue(context.Background(), traceKey{}, "trace-1")
	_ = h(ctx, event.New("t", nil))
	if len(got) != 1 || got[0] != "trace-1" {
		t.Errorf("handler saw ctx values %v, want [trace-1]", got)
	}
}

func TestLoggingNilLoggerUsesDefault(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	h := middleware.Logging(nil)(func(context.Context, *event.Event) error { return errBoom })
	slog.SetDefault(jsonLogger(&buf, slog.LevelInfo)) // after construction: still honoured
	_ = h(context.Background(), event.New("t", nil))
	if recs := records(t, &buf); len(recs) != 1 || recs[0]["level"] != "WARN" {
		t.Errorf("records = %v, want one WARN through slog.Default()", recs)
	}
}

func TestLoggingSuccessAllocatesNothing(t *testing.T) {
	var buf bytes.Buffer
	h := middleware.Logging(jsonLogger(&buf, slog.LevelInfo))(func(context.Context, *event.Event) error { return nil })
	ctx, e := context.Background(), event.New("t", nil)
	if allocs := testing.AllocsPerRun(1000, func() { _ = h(ctx, e) }); allocs != 0 {
		t.Errorf("success path with Debug off: %v allocations per event, want 0", allocs)
	}
}

func BenchmarkLoggingSuccess(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		b.Run(fmt.Sprintf("level=%v", level), func(b *testing.B) {
			logger := slog.New(slog.NewJSONHandler(discard{}, &slog.HandlerOptions{Level: level}))
			h := middleware.Logging(logger)(func(context.Context, *event.Event) error { return nil })
			ctx, e := context.Background(), event.New("t", nil)
			b.ReportAllocs()
			for b.Loop() {
				_ = h(ctx, e)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
