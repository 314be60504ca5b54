package eventstream_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
	"libx.net/eventstream/history"
)

// The debug page plots each group's events per second and p99 handler
// latency from its first look on; nothing samples before anyone looks, and
// Close stops the sampling (TestMain's leak check sees to that).
func TestDebugPagePlotsMemory(t *testing.T) {
	bus := quietBus(t, eventstream.DefaultConfig())
	defer bus.Close()
	checkPlots(t, bus, "orders")
}

func TestKafkaDebugPagePlots(t *testing.T) {
	bus := newKafkaBus(t, eventstreamtest.KafkaCluster(t), nil)
	checkPlots(t, bus, "orders")
}

func TestKafkaDebugPagePlotsRealBroker(t *testing.T) {
	bus := newKafkaBus(t, eventstreamtest.RealKafkaBrokers(t), nil)
	checkPlots(t, bus, eventstreamtest.Topic(t))
}

func checkPlots(t *testing.T, bus eventstream.EventBus, topic string) {
	t.Helper()
	if _, err := bus.On(topic, func(ctx context.Context, e *eventstream.Event) error {
		time.Sleep(200 * time.Microsecond)
		return nil
	}, eventstream.WithConsumerGroup("billing")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := bus.Emit(context.Background(), topic, i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(300 * time.Millisecond)
	if samplerRunning() {
		t.Fatal("the per-second sampler runs before anyone looked")
	}
	srv := httptest.NewServer(http.StripPrefix("/debug", eventstream.DebugHandler(bus)))
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	get("/debug/series") // the first look starts sampling
	if !samplerRunning() {
		t.Fatal("no sampler after the first look")
	}
	var billing history.Series
	waitFor(t, "three seconds of figures with deliveries", 15*time.Second, func() bool {
		var all []history.Series
		if err := json.Unmarshal([]byte(get("/debug/series")), &all); err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			if s.Topic == topic && s.Group == "billing" {
				billing = s
			}
		}
		return len(billing.Rate) >= 3 && billing.Rate[len(billing.Rate)-1] > 0
	})
	if len(billing.P99) != len(billing.Rate) || billing.Step != time.Second || billing.Start.IsZero() {
		t.Errorf("series %+v", billing)
	}
	if last := billing.P99[len(billing.P99)-1]; last < 200*time.Microsecond {
		t.Errorf("p99 %v, less than every handler's sleep", last)
	}
	page := get("/debug/")
	if !strings.Contains(page, "Last minutes") {
		t.Fatal("page has no plots section")
	}
	// Every group row has two plots with points; the emit row one.
	plots := regexp.MustCompile(`<svg class="plot"[^>]*data-points="(\d+)"`).FindAllStringSubmatch(page, -1)
	if len(plots) != 3 {
		t.Fatalf("%d plots on the page, want 3 (emits; deliveries and p99 of billing)", len(plots))
	}
	for _, m := range plots {
		if n, _ := strconv.Atoi(m[1]); n < 3 {
			t.Errorf("a plot with %s points", m[1])
		}
	}
	if !strings.Contains(page, "<polyline points=") {
		t.Error("no polyline drawn")
	}
}

// samplerRunning reports whether a per-second sampler goroutine runs.
func samplerRunning() bool {
	// Every goroutine's stack, whole: a dump cut short (many goroutines of
	// other tests) could miss the sampler.
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Contains(string(buf[:n]), "(*perSecond).loop")
		}
		buf = make([]byte, 2*len(buf))
	}
}
