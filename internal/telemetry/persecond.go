package telemetry

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"libx.net/eventstream/history"
)

// The per-second figures of the debug page's plots are sampled from the
// counters and histograms the stats already keep, once a second, by a
// goroutine that starts when someone first asks for them and stops when
// nobody has asked for a while or the bus closes: the event path pays
// nothing for them, and a bus nobody looks at runs no ticker at all.
const (
	ringSeconds = 300              // the plots' span: five minutes
	sampleEvery = time.Second      // one point per second
	idleStop    = 10 * time.Minute // no look for this long: sampling stops
)

// perSecond is the sampler and its rings: one per emitting topic and one
// per topic and consumer group.
type perSecond struct {
	reg         *registry
	every, idle time.Duration // sampleEvery and idleStop; shorter in tests

	mu       sync.Mutex
	running  bool
	closed   bool
	stop     chan struct{}
	done     chan struct{}
	lastLook time.Time
	last     time.Time // the last sample
	sends    map[string]*rateRing
	groups   map[groupKey]*rateRing
}

// rateRing is the last ringSeconds points of one series: the counter's
// increase per second and the p99 of the durations recorded in it.
type rateRing struct {
	prevCount int64
	prevHist  snapshot
	n, next   int // points held, index of the next one
	rate      [ringSeconds]float32
	p99       [ringSeconds]time.Duration
}

func (r *rateRing) push(rate float64, p99 time.Duration) {
	r.rate[r.next], r.p99[r.next] = float32(rate), p99
	r.next = (r.next + 1) % ringSeconds
	r.n = min(r.n+1, ringSeconds)
}

// points returns the ring's points, oldest first.
func (r *rateRing) points(withP99 bool) ([]float64, []time.Duration) {
	rates := make([]float64, r.n)
	var p99s []time.Duration
	if withP99 {
		p99s = make([]time.Duration, r.n)
	}
	start := (r.next - r.n + ringSeconds) % ringSeconds
	for i := range r.n {
		j := (start + i) % ringSeconds
		rates[i] = float64(r.rate[j])
		if withP99 {
			p99s[i] = r.p99[j]
		}
	}
	return rates, p99s
}

// Series returns the per-second throughput and p99 handler latency of the
// last minutes, per topic (emits) and per topic and consumer group
// (deliveries), oldest point first. The first call starts sampling, so the
// figures begin then; after Close it returns what was sampled before.
func (t *Telemetry) Series() []history.Series {
	p := t.perSecondOnce()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.lastLook = now
	if !p.running && !p.closed {
		p.startLocked(now)
	}
	var out []history.Series
	end := p.last
	for topic, r := range p.sends {
		rates, _ := r.points(false)
		out = append(out, history.Series{Topic: topic, Start: p.startOf(end, len(rates)), Step: p.every, Rate: rates})
	}
	for k, r := range p.groups {
		rates, p99s := r.points(true)
		out = append(out, history.Series{Topic: k.topic, Group: k.group, Start: p.startOf(end, len(rates)), Step: p.every, Rate: rates, P99: p99s})
	}
	slices.SortFunc(out, func(a, b history.Series) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Group, b.Group))
	})
	return out
}

// startOf is the time of the first of n points whose last is at end.
func (p *perSecond) startOf(end time.Time, n int) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return end.Add(-time.Duration(n-1) * p.every)
}

func (t *Telemetry) perSecondOnce() *perSecond {
	t.perSecMu.Lock()
	defer t.perSecMu.Unlock()
	if t.perSec == nil {
		t.perSec = &perSecond{reg: t.reg, every: sampleEvery, idle: idleStop}
	}
	return t.perSec
}

// StopSeries stops the sampler for good (the bus closes) and waits for it;
// what was sampled stays readable.
func (t *Telemetry) StopSeries() {
	p := t.perSecondOnce() // also when nobody looked yet: a look after Close starts nothing
	p.mu.Lock()
	p.closed = true
	running, stop, done := p.running, p.stop, p.done
	p.running = false
	p.mu.Unlock()
	if running {
		close(stop)
		<-done
	}
}

// startLocked starts a fresh sampler: the rings of an earlier run are
// dropped, as a gap would read as a stall; the counters' values now are the
// baseline of the first point.
func (p *perSecond) startLocked(now time.Time) {
	p.sends, p.groups = map[string]*rateRing{}, map[groupKey]*rateRing{}
	p.sampleLocked(now, false)
	p.running = true
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.loop(p.stop, p.done)
}

func (p *perSecond) loop(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			p.mu.Lock()
			if now.Sub(p.lastLook) > p.idle {
				p.running = false
				p.mu.Unlock()
				return
			}
			p.sampleLocked(now, true)
			p.mu.Unlock()
		}
	}
}

// sampleLocked reads every series' counters once; with push, each ring
// gets the increase since the last sample as a point.
func (p *perSecond) sampleLocked(now time.Time, push bool) {
	secs := now.Sub(p.last).Seconds()
	p.last = now
	p.reg.sends.Range(func(k, v any) bool {
		s := v.(*sendSeries)
		n := s.sent.Load() + s.failed.Load()
		r := p.sends[k.(string)]
		if r == nil {
			r = &rateRing{}
			p.sends[k.(string)] = r
		} else if push {
			r.push(float64(n-r.prevCount)/secs, 0)
		}
		r.prevCount = n
		return true
	})
	p.reg.mu.Lock()
	defer p.reg.mu.Unlock()
	for k := range p.groups {
		if p.reg.groups[k] == nil {
			delete(p.groups, k) // a private group that ended
		}
	}
	for k, g := range p.reg.groups {
		n, h := g.consumed.Load(), g.process.snapshot()
		r := p.groups[k]
		if r == nil {
			r = &rateRing{}
			p.groups[k] = r
		} else if push {
			d := h
			for i := range d {
				d[i] -= r.prevHist[i]
			}
			r.push(float64(n-r.prevCount)/secs, d.quantile(0.99))
		}
		r.prevCount, r.prevHist = n, h
	}
}
