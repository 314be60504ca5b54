package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// The lag gauge needs each partition's end offset. A member learns the
// high watermark from its fetches, but a member that is stuck (a handler
// that does not return, a full queue, a dead letter that waits) stops
// fetching, and its watermark stops with it exactly when the lag matters.
// So the transport also lists the end offsets of its subscribed topics
// itself, on an interval, independently of fetching.

// lagRefresh is how often the end offsets are listed for the lag gauge:
// within a Prometheus scrape interval, and one small request per topic.
const lagRefresh = 5 * time.Second

// endOffsets holds the latest end offsets listed, per topic and partition.
type endOffsets struct {
	mu   sync.Mutex
	ends map[string]map[int32]int64
}

// get returns the listed end offset of a partition; -1 when unknown.
func (e *endOffsets) get(topic string, p int32) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if off, ok := e.ends[topic][p]; ok {
		return off
	}
	return -1
}

func (e *endOffsets) store(listed kadm.ListedOffsets) {
	ends := map[string]map[int32]int64{}
	listed.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil {
			return
		}
		if ends[lo.Topic] == nil {
			ends[lo.Topic] = map[int32]int64{}
		}
		ends[lo.Topic][lo.Partition] = lo.Offset
	})
	e.mu.Lock()
	e.ends = ends
	e.mu.Unlock()
}

// lagLoop lists the subscribed topics' end offsets every lagRefresh until
// the transport closes.
func (t *Transport) lagLoop() {
	defer t.bg.Done()
	tick := time.NewTicker(lagRefresh)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
			t.refreshEnds()
		}
	}
}

func (t *Transport) refreshEnds() {
	t.mu.Lock()
	set := map[string]bool{}
	for _, c := range t.consumers {
		set[c.sub.Topic] = true
	}
	t.mu.Unlock()
	if len(set) == 0 {
		return
	}
	topics := make([]string, 0, len(set))
	for topic := range set {
		topics = append(topics, topic)
	}
	ctx, cancel := context.WithTimeout(t.ctx, lagRefresh)
	defer cancel()
	listed, err := t.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		// The gauge keeps the fetches' watermarks meanwhile; the next
		// tick tries again. Franz-go logs the connection trouble.
		return
	}
	t.ends.store(listed)
}

// ReportLag implements transport.LagReporter: per member and partition, the
// partition's end offset (the later of the last fetch's high watermark and
// the last listing) minus the group's committed offset.
func (t *Transport) ReportLag(observe func(topic, group string, partition int32, lag int64)) {
	t.mu.Lock()
	cs := make([]*consumer, 0, len(t.consumers))
	for _, c := range t.consumers {
		cs = append(cs, c)
	}
	t.mu.Unlock()
	for _, c := range cs {
		for _, ps := range c.owned() {
			end := max(ps.hwm.Load(), t.ends.get(c.sub.Topic, ps.partition))
			committed := ps.committed.Load()
			if end < 0 || committed < 0 {
				continue
			}
			observe(c.sub.Topic, c.sub.Group, ps.partition, max(end-committed, 0))
		}
	}
}
