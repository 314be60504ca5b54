package telemetry_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	itel "libx.net/eventstream/internal/telemetry"
)

// The per-second sampler runs only while someone looks: it starts with the
// first Series, stops once nobody has asked for the idle time (a later look
// starts it afresh) and for good with StopSeries, after which Series still
// answers with what was sampled.
func TestSeriesSamplerRunsWhileLookedAt(t *testing.T) {
	tel, err := itel.New(itel.Config{System: "memory", InProcess: true, Stats: true})
	if err != nil {
		t.Fatal(err)
	}
	itel.SetSeriesTiming(tel, 10*time.Millisecond, 100*time.Millisecond)
	tel.Subscription("orders", "billing", "s1", false) // the group's series
	t.Cleanup(tel.StopSeries)
	if sampling() {
		t.Fatal("sampling before anyone looked")
	}
	tel.Series()
	waitUntil(t, "a sampler after the first look", sampling)
	waitUntil(t, "points", func() bool {
		for _, s := range tel.Series() {
			if s.Group == "billing" && len(s.Rate) >= 3 {
				return true
			}
		}
		return false
	})
	waitUntil(t, "the sampler to stop unwatched", func() bool { return !sampling() })
	tel.Series()
	waitUntil(t, "a sampler again after a new look", sampling)
	tel.StopSeries()
	if sampling() {
		t.Fatal("sampler running after StopSeries")
	}
	tel.Series()
	time.Sleep(50 * time.Millisecond) // time for a wrongly started sampler to show
	if sampling() {
		t.Fatal("a look after StopSeries started a sampler")
	}
}

func sampling() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*perSecond).loop")
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
