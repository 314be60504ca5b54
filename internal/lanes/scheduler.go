// Package lanes runs handlers for both transports: bounded FIFO lanes, each
// drained by at most one worker at a time, and one fair scheduler that lends
// the workers of one ants pool to the lanes that have work.
//
// A lane asks for a worker only when it goes from idle to busy, so under load
// a worker drains batch after batch and the hot path pays no pool submission
// per item. Scheduling never blocks the caller: when every worker is taken,
// the lane waits in a FIFO that workers serve before they return to the pool,
// and a lane that has had its share yields to the lanes waiting behind it.
package lanes

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"
)

// fairShare is how many items a worker handles from one lane before it lets
// a waiting lane go first.
const fairShare = 256

// runner is a lane as the scheduler sees it.
type runner interface {
	// run handles up to budget items; more reports that items are left.
	run(budget int) (more bool)
}

// Scheduler lends the workers of one ants pool to lanes. It is safe for
// concurrent use.
type Scheduler struct {
	pool     *ants.Pool
	capacity int

	mu      sync.Mutex
	active  int // workers this scheduler holds
	pending []runner
	waiting atomic.Int32
	closed  bool
}

// NewScheduler returns a scheduler over a new ants pool of size workers.
func NewScheduler(size int, expiry time.Duration, preAlloc bool) (*Scheduler, error) {
	pool, err := ants.NewPool(size,
		ants.WithExpiryDuration(expiry),
		ants.WithPreAlloc(preAlloc),
		// The scheduler never submits beyond the pool's capacity, so a
		// refusal means the pool is closing; never block the caller.
		ants.WithNonblocking(true),
	)
	if err != nil {
		return nil, err
	}
	return &Scheduler{pool: pool, capacity: size}, nil
}

// schedule gives r a worker now, or queues it for the next free one.
func (s *Scheduler) schedule(r runner) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.active >= s.capacity {
		s.pending = append(s.pending, r)
		s.waiting.Store(int32(len(s.pending)))
		s.mu.Unlock()
		return
	}
	s.active++
	s.mu.Unlock()
	s.submit(r)
}

func (s *Scheduler) submit(r runner) {
	if err := s.pool.Submit(func() { s.work(r) }); err != nil {
		// The pool refused (released, or its accounting lags behind a
		// worker that is just returning): queue the lane for a worker
		// that is still running, or drop it when the scheduler is closed.
		s.mu.Lock()
		s.active--
		if !s.closed && s.active > 0 {
			s.pending = append(s.pending, r)
			s.waiting.Store(int32(len(s.pending)))
		} else if !s.closed {
			s.mu.Unlock()
			time.AfterFunc(time.Millisecond, func() { s.schedule(r) })
			return
		}
		s.mu.Unlock()
	}
}

// work runs r, then the lanes waiting for a worker. A handler that ends its
// goroutine (runtime.Goexit) ends this worker too; the deferred hand-over
// gives the slot and the lanes to a fresh one.
func (s *Scheduler) work(r runner) {
	normal := false
	defer func() {
		if !normal {
			s.submit(r)
		}
	}()
	for r != nil {
		more := r.run(fairShare)
		s.mu.Lock()
		if more {
			if len(s.pending) == 0 {
				s.mu.Unlock()
				continue // nobody waits: keep the lane
			}
			s.pending = append(s.pending, r)
		}
		r = nil
		if len(s.pending) > 0 {
			r = s.pending[0]
			s.pending[0] = nil
			s.pending = s.pending[1:]
		} else {
			s.active--
		}
		s.waiting.Store(int32(len(s.pending)))
		s.mu.Unlock()
	}
	normal = true
}

// Stats reports the pool's running workers and capacity, and the lanes
// waiting for a worker.
func (s *Scheduler) Stats() (running, capacity, waiting int64) {
	return int64(s.pool.Running()), int64(s.pool.Cap()), int64(s.waiting.Load())
}

// Close stops scheduling and releases the pool, waiting up to timeout for
// its workers to return (a handler that is stuck must not hold Close).
func (s *Scheduler) Close(timeout time.Duration) error {
	s.mu.Lock()
	s.closed = true
	clear(s.pending)
	s.pending = nil
	s.waiting.Store(0)
	s.mu.Unlock()
	if timeout <= 0 {
		s.pool.Release()
		return nil
	}
	if err := s.pool.ReleaseTimeout(timeout); err != nil {
		if errors.Is(err, ants.ErrTimeout) {
			return ErrWorkersStuck
		}
		return err
	}
	return nil
}

// ErrWorkersStuck: Close gave up waiting for handlers that did not return.
var ErrWorkersStuck = errors.New("handlers still running when the pool was released")
