package eventstream

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"

	"libx.net/eventstream/history"
	"libx.net/eventstream/internal/transport"
)

// deadLetterStore keeps the most recent dead letters of a bus whose
// transport cannot read its dead-letter topics back (memory mode, an MQ
// adapter), so that Replay and the debug page work there too. It is
// bounded: once full, the oldest dead letter makes room (logged).
type deadLetterStore struct {
	logger *slog.Logger

	mu      sync.Mutex
	max     int
	seq     uint64
	entries []storedDeadLetter // oldest first
	evicted int64
}

type storedDeadLetter struct {
	seq uint64
	e   *Event
}

var _ transport.DeadLetterReader = (*deadLetterStore)(nil)

func newDeadLetterStore(size int, logger *slog.Logger) *deadLetterStore {
	return &deadLetterStore{max: size, logger: logger}
}

// keepDeadLetter adds a dead letter just written to the bus's store, if it
// keeps one.
func (b *bus) keepDeadLetter(dl *Event) {
	if b.dlStore != nil {
		b.dlStore.add(dl)
	}
}

func (s *deadLetterStore) add(dl *Event) {
	s.mu.Lock()
	s.seq++
	s.entries = append(s.entries, storedDeadLetter{s.seq, dl})
	var evicted *Event
	if len(s.entries) > s.max {
		evicted = s.entries[0].e
		s.entries[0] = storedDeadLetter{}
		s.entries = s.entries[1:]
		s.evicted++
	}
	n := s.evicted
	s.mu.Unlock()
	if evicted != nil && (n == 1 || n%1000 == 0) {
		s.logger.Warn("eventstream: dead-letter store full; the oldest dead letters are no longer kept for replay",
			"size", s.max, "evicted_total", n, "topic", evicted.Topic, "event_id", evicted.Headers[HeaderDeadLetterID])
	}
}

// ReadDeadLetters implements transport.DeadLetterReader over the store.
// With r.Commit, the dead letters of r.Topic are taken out while they are
// visited (so that two replays never re-emit one twice), and put back in
// their place unless visited VisitDone.
func (s *deadLetterStore) ReadDeadLetters(ctx context.Context, r transport.DeadLetterRead) error {
	s.mu.Lock()
	var mine []storedDeadLetter
	if r.Commit {
		s.entries = slices.DeleteFunc(s.entries, func(d storedDeadLetter) bool {
			if d.e.Topic == r.Topic {
				mine = append(mine, d)
				return true
			}
			return false
		})
	} else {
		for _, d := range s.entries {
			if d.e.Topic == r.Topic {
				mine = append(mine, d)
			}
		}
	}
	s.mu.Unlock()
	if r.Last > 0 && int64(len(mine)) > r.Last {
		mine = mine[int64(len(mine))-r.Last:]
	}
	var back []storedDeadLetter
	for i, d := range mine {
		if ctx.Err() != nil {
			back = append(back, mine[i:]...)
			break
		}
		// Memory mode's replays finish before Publish returns; an MQ
		// adapter's may finish later: wait for each, one at a time.
		verdict := make(chan transport.Visit, 1)
		r.Visit(d.e, func(v transport.Visit) { verdict <- v })
		if <-verdict != transport.VisitDone {
			back = append(back, d)
		}
	}
	if r.Commit && len(back) > 0 {
		s.mu.Lock()
		s.entries = append(s.entries, back...)
		slices.SortFunc(s.entries, func(x, y storedDeadLetter) int { return cmp.Compare(x.seq, y.seq) })
		// Dead letters added meanwhile may have pushed it past its bound.
		if over := len(s.entries) - s.max; over > 0 {
			clear(s.entries[:over])
			s.entries = s.entries[over:]
			s.evicted += int64(over)
		}
		s.mu.Unlock()
	}
	return ctx.Err()
}

// list returns up to n dead letters of any topic matching f, newest first.
func (s *deadLetterStore) list(b *bus, f history.DeadLetterFilter, n int) []DeadLetter {
	s.mu.Lock()
	entries := slices.Clone(s.entries)
	s.mu.Unlock()
	var out []DeadLetter
	for i := len(entries) - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
		if d := b.describeDeadLetter(entries[i].e.Topic, entries[i].e); d.Topic != "" && f.Match(d) {
			out = append(out, d)
		}
	}
	return out
}
