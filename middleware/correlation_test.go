package middleware_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"libx.net/eventstream/event"
	"libx.net/eventstream/middleware"
)

func TestCorrelationFromEvent(t *testing.T) {
	var buf bytes.Buffer
	h := middleware.Correlation(jsonLogger(&buf, slog.LevelInfo))(func(ctx context.Context, e *event.Event) error {
		if got := middleware.CorrelationID(ctx); got != "order-42" {
			t.Errorf("CorrelationID = %q, want order-42", got)
		}
		middleware.Logger(ctx).InfoContext(ctx, "charged")
		return nil
	})
	e := event.New("orders", nil)
	e.CorrelationID = "order-42"
	if err := h(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	recs := records(t, &buf)
	if len(recs) != 1 || recs[0]["correlation_id"] != "order-42" {
		t.Errorf("records = %v, want one carrying correlation_id order-42", recs)
	}
}

// An event without a correlation id starts its chain: its id is the
// correlation id.
func TestCorrelationDefaultsToEventID(t *testing.T) {
	e := event.New("orders", nil)
	var got string
	_ = middleware.Correlation(nil)(func(ctx context.Context, e *event.Event) error {
		got = middleware.CorrelationID(ctx)
		return nil
	})(context.Background(), e)
	if got != e.ID {
		t.Errorf("CorrelationID = %q, want the event's id %q", got, e.ID)
	}
}

func TestCorrelationAbsent(t *testing.T) {
	ctx := context.Background()
	if middleware.CorrelationID(ctx) != "" || middleware.Logger(ctx) != slog.Default() {
		t.Error("without Correlation: want an empty id and slog.Default()")
	}
}

func ExampleCorrelation() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	h := middleware.Correlation(logger)(func(ctx context.Context, e *event.Event) error {
		middleware.Logger(ctx).InfoContext(ctx, "payment captured")
		fmt.Println(middleware.CorrelationID(ctx))
		return nil
	})
	e := &event.Event{ID: "0190a3c2-0000-7000-8000-000000000001", Topic: "payments", CorrelationID: "checkout-7"}
	_ = h(context.Background(), e)
	// Output:
	// level=INFO msg="payment captured" correlation_id=checkout-7
	// checkout-7
}

// The bus's lineage is the correlation id when no header names one.
func TestCorrelationFromLineage(t *testing.T) {
	var got string
	e := event.New("orders", 1)
	e.CorrelationID = "req-9"
	_ = middleware.Correlation(nil)(func(ctx context.Context, _ *event.Event) error {
		got = middleware.CorrelationID(ctx)
		return nil
	})(context.Background(), e)
	if got != "req-9" {
		t.Errorf("CorrelationID = %q, want the event's CorrelationID req-9", got)
	}
}
