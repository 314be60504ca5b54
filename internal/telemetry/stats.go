package telemetry

import (
	"cmp"
	"slices"

	"libx.net/eventstream/history"
)

// Stats returns the figures GetStats reports, read from the series: one
// row per topic for the emit side, one per topic and consumer group for the
// consume side, and their totals. A series that has counted nothing yet
// has no row, as a metric has no series before its first measurement.
func (t *Telemetry) Stats() history.Stats {
	var st history.Stats
	var procAll, delivAll snapshot
	lags := t.timeLags()
	t.reg.sends.Range(func(_, v any) bool {
		s := v.(*sendSeries)
		c := history.Counts{Emitted: s.sent.Load(), EmitFailed: s.failed.Load()}
		if c != (history.Counts{}) {
			st.Rows = append(st.Rows, history.Row{Topic: s.labels.topic, Counts: c})
		}
		return true
	})
	t.reg.mu.Lock()
	for _, g := range t.reg.groups {
		c := history.Counts{
			Delivered:    g.consumed.Load(),
			Succeeded:    g.succeeded.Load(),
			Failed:       g.failed.Load(),
			Retried:      g.retried.Load(),
			Requeued:     g.requeued.Load(),
			DeadLettered: g.dead.total(),
			InFlight:     g.inFlight.Load(),
			TimeLag:      lags[g.key],
		}
		delete(lags, g.key)
		proc, deliv := g.process.snapshot(), g.delivery.snapshot()
		if c == (history.Counts{}) && proc == (snapshot{}) {
			continue
		}
		fillLatencies(&c, &proc, &deliv)
		procAll.merge(&proc)
		delivAll.merge(&deliv)
		st.Rows = append(st.Rows, history.Row{Topic: g.key.topic, Group: g.key.group, Counts: c})
	}
	t.reg.mu.Unlock()
	for k, lag := range lags { // waiting, and no delivery has started yet
		if lag > 0 {
			st.Rows = append(st.Rows, history.Row{Topic: k.topic, Group: k.group, Counts: history.Counts{TimeLag: lag}})
		}
	}
	for _, r := range st.Rows {
		c := &st.Counts
		c.Emitted += r.Emitted
		c.EmitFailed += r.EmitFailed
		c.Delivered += r.Delivered
		c.Succeeded += r.Succeeded
		c.Failed += r.Failed
		c.Retried += r.Retried
		c.Requeued += r.Requeued
		c.DeadLettered += r.DeadLettered
		c.InFlight += r.InFlight
		c.TimeLag = max(c.TimeLag, r.TimeLag)
	}
	fillLatencies(&st.Counts, &procAll, &delivAll)
	slices.SortFunc(st.Rows, func(a, b history.Row) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Group, b.Group))
	})
	return st
}

func fillLatencies(c *history.Counts, proc, deliv *snapshot) {
	c.LatencyP50, c.LatencyP95, c.LatencyP99 = proc.quantile(0.50), proc.quantile(0.95), proc.quantile(0.99)
	c.DeliveryP50, c.DeliveryP95, c.DeliveryP99 = deliv.quantile(0.50), deliv.quantile(0.95), deliv.quantile(0.99)
}
