package middleware

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"libx.net/eventstream/event"
)

// DedupStore remembers the ids of handled events for a while. A store
// shared by several processes (Redis, a database table) makes Dedup work
// across them; NewMemoryDedupStore is the in-process default. Methods must
// be safe for concurrent use.
type DedupStore interface {
	// Seen reports whether key was recorded less than its window ago.
	Seen(ctx context.Context, key string) (bool, error)
	// Record remembers key for window.
	Record(ctx context.Context, key string, window time.Duration) error
}

// Dedup is middleware that hands each event id to next once within a
// window: a redelivery (Kafka's at-least-once after a rebalance, a
// producer's retry) that arrives after the first delivery succeeded is
// acknowledged without calling next, counted (Duplicates) and logged at
// Debug.
//
// An id is recorded only once next succeeded, so a failed event stays
// new: its retries, and a later replay of its dead letter, reach next
// again. Two deliveries of one id at once run one after the other, the
// second seeing the outcome of the first. Use one Dedup per subscription
// (WithSubscriptionMiddleware); a store shared by several subscriptions or
// groups needs a DedupScope each, or one group's success would hide the
// event from another. A store error never loses an event: a failed Seen
// lets the event through (a duplicate is better than a loss), a failed
// Record is logged at Warn and the event counts as handled.
type Dedup struct {
	store  DedupStore
	window time.Duration
	scope  string
	logger *slog.Logger

	duplicates atomic.Int64

	mu       sync.Mutex
	inFlight map[string]chan struct{} // closed when that id's call returns
}

// DedupOption configures NewDedup.
type DedupOption interface{ applyDedup(*Dedup) }

type dedupOptionFunc func(*Dedup)

func (f dedupOptionFunc) applyDedup(d *Dedup) { f(d) }

// Defaults of NewDedup.
const (
	// DefaultDedupWindow is how long an id is remembered.
	DefaultDedupWindow = 10 * time.Minute
	// DefaultDedupCapacity bounds the ids NewMemoryDedupStore keeps.
	DefaultDedupCapacity = 100_000
)

// DedupWindow sets how long a handled id is remembered. Default
// DefaultDedupWindow; d must be positive.
func DedupWindow(d time.Duration) DedupOption {
	return dedupOptionFunc(func(x *Dedup) {
		if d > 0 {
			x.window = d
		}
	})
}

// DedupWithStore sets where ids are remembered. Default: a
// NewMemoryDedupStore(DefaultDedupCapacity) of its own.
func DedupWithStore(s DedupStore) DedupOption {
	return dedupOptionFunc(func(x *Dedup) {
		if s != nil {
			x.store = s
		}
	})
}

// DedupScope prefixes every key with scope and "/", so that subscriptions
// (or groups in several processes) can share one store without seeing each
// other's ids. Default: no prefix.
func DedupScope(scope string) DedupOption {
	return dedupOptionFunc(func(x *Dedup) { x.scope = scope })
}

// DedupLogger sets where duplicates (Debug) and store failures (Warn) are
// logged. Default: slog.Default() at the time of each record.
func DedupLogger(l *slog.Logger) DedupOption {
	return dedupOptionFunc(func(x *Dedup) { x.logger = l })
}

// NewDedup returns a Dedup; see its options for the defaults.
func NewDedup(opts ...DedupOption) *Dedup {
	d := &Dedup{window: DefaultDedupWindow, inFlight: map[string]chan struct{}{}}
	for _, o := range opts {
		o.applyDedup(d)
	}
	if d.store == nil {
		d.store = NewMemoryDedupStore(DefaultDedupCapacity)
	}
	return d
}

// Duplicates is how many events were acknowledged as duplicates.
func (d *Dedup) Duplicates() int64 { return d.duplicates.Load() }

// Middleware implements event.Middleware.
func (d *Dedup) Middleware(next event.Handler) event.Handler {
	return func(ctx context.Context, e *event.Event) error {
		key := e.ID
		if d.scope != "" {
			key = d.scope + "/" + e.ID
		}
		done, err := d.enter(ctx, key)
		if err != nil {
			return err
		}
		defer d.leave(key, done)
		seen, serr := d.store.Seen(ctx, key)
		if serr != nil {
			d.log().LogAttrs(ctx, slog.LevelWarn, "eventstream: dedup store lookup failed; handling the event",
				slog.String(logKeyTopic, e.Topic), slog.String(logKeyEventID, e.ID), slog.Any(logKeyError, serr))
		}
		if seen {
			d.duplicates.Add(1)
			if l := d.log(); l.Enabled(ctx, slog.LevelDebug) {
				l.LogAttrs(ctx, slog.LevelDebug, "eventstream: duplicate event acknowledged",
					slog.String(logKeyTopic, e.Topic), slog.String(logKeyEventID, e.ID))
			}
			return nil
		}
		if err := next(ctx, e); err != nil {
			return err
		}
		if rerr := d.store.Record(ctx, key, d.window); rerr != nil {
			d.log().LogAttrs(ctx, slog.LevelWarn, "eventstream: dedup store could not record a handled event",
				slog.String(logKeyTopic, e.Topic), slog.String(logKeyEventID, e.ID), slog.Any(logKeyError, rerr))
		}
		return nil
	}
}

// enter waits while another call handles key, so that the second of two
// simultaneous deliveries sees whether the first succeeded.
func (d *Dedup) enter(ctx context.Context, key string) (chan struct{}, error) {
	for {
		d.mu.Lock()
		busy, ok := d.inFlight[key]
		if !ok {
			done := make(chan struct{})
			d.inFlight[key] = done
			d.mu.Unlock()
			return done, nil
		}
		d.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (d *Dedup) leave(key string, done chan struct{}) {
	d.mu.Lock()
	delete(d.inFlight, key)
	d.mu.Unlock()
	close(done)
}

func (d *Dedup) log() *slog.Logger {
	if d.logger != nil {
		return d.logger
	}
	return slog.Default()
}

// MemoryDedupStore is the in-process DedupStore: at most capacity keys,
// each for its window; when full, the oldest recorded key is forgotten
// first.
type MemoryDedupStore struct {
	capacity int
	now      func() time.Time

	mu      sync.Mutex
	expires map[string]time.Time
	order   []dedupEntry // FIFO of recorded keys; a ring of capacity slots
	head    int          // oldest entry
	n       int          // entries in the ring
}

type dedupEntry struct {
	key     string
	expires time.Time
}

// NewMemoryDedupStore returns a store of at most capacity keys (at least
// 1).
func NewMemoryDedupStore(capacity int) *MemoryDedupStore {
	capacity = max(capacity, 1)
	return &MemoryDedupStore{capacity: capacity, now: time.Now,
		expires: map[string]time.Time{}, order: make([]dedupEntry, capacity)}
}

// Seen implements DedupStore.
func (s *MemoryDedupStore) Seen(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.expires[key]
	return ok && s.now().Before(exp), nil
}

// Record implements DedupStore. It also forgets the keys whose window
// ended, oldest first, so the map never holds more than capacity keys.
func (s *MemoryDedupStore) Record(_ context.Context, key string, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for s.n > 0 && (s.n == s.capacity || !now.Before(s.order[s.head].expires)) {
		old := s.order[s.head]
		if exp, ok := s.expires[old.key]; ok && exp.Equal(old.expires) {
			delete(s.expires, old.key) // not re-recorded since
		}
		s.order[s.head] = dedupEntry{}
		s.head = (s.head + 1) % s.capacity
		s.n--
	}
	exp := now.Add(window)
	s.expires[key] = exp
	s.order[(s.head+s.n)%s.capacity] = dedupEntry{key: key, expires: exp}
	s.n++
	return nil
}

// Len is the number of keys the store holds.
func (s *MemoryDedupStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.expires)
}
