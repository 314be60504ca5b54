package kafka

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"libx.net/eventstream/internal/transport"
)

var _ transport.DeadLetterReader = (*Transport)(nil)

// Bounds of a dead-letter read.
const (
	// readIdle ends a read whose partitions still look unfinished when no
	// record came for this long: the last offsets below the end may be
	// ones no consumer sees (transaction markers, compacted away).
	readIdle = 10 * time.Second
	// commitEvery is how often progress is committed during a long read,
	// so that a read cut short resumes close to where it stopped.
	commitEvery = time.Second
)

// ReadDeadLetters implements transport.DeadLetterReader with a client of
// its own that reads r.Topic's partitions directly, from r.Group's committed
// offsets (or from the start), up to the end offsets listed when it starts:
// what is written meanwhile — a replayed event dead-lettered again — is
// left for the next read. With r.Commit, the offset after each visited
// record is committed for r.Group (a group with no members: offsets only),
// up to the first record Visit refused in each partition.
func (t *Transport) ReadDeadLetters(ctx context.Context, r transport.DeadLetterRead) error {
	if err := t.topicExists(ctx, r.Topic); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil // no dead letter was ever written
		}
		return &Error{Op: "look up topic", Topic: r.Topic, Err: err}
	}
	starts, err := t.adm.ListStartOffsets(ctx, r.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return &Error{Op: "list start offsets", Topic: r.Topic, Err: err}
	}
	ends, err := t.adm.ListEndOffsets(ctx, r.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return &Error{Op: "list end offsets", Topic: r.Topic, Err: err}
	}
	var committed kadm.OffsetResponses
	if r.Group != "" {
		// A group that never committed is no error: the read starts at
		// the beginning (kfake says so with GROUP_ID_NOT_FOUND).
		if committed, err = t.adm.FetchOffsets(ctx, r.Group); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return &Error{Op: "fetch offsets of group " + r.Group, Topic: r.Topic, Err: err}
		}
	}
	from := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		pos := int64(0)
		if s, ok := starts.Lookup(r.Topic, o.Partition); ok {
			pos = s.Offset
		}
		if c, ok := committed.Lookup(r.Topic, o.Partition); ok && c.Err == nil && c.At > pos {
			pos = c.At
		}
		if r.Last > 0 && o.Offset-r.Last > pos {
			pos = o.Offset - r.Last
		}
		if pos < o.Offset {
			from[o.Partition] = kgo.NewOffset().At(pos)
			end[o.Partition] = o.Offset
		}
	})
	if len(from) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), t.base...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.Topic: from}),
		kgo.FetchMaxWait(t.cfg.FetchMaxWait))...)
	if err != nil {
		return &Error{Op: "read dead letters", Topic: r.Topic, Err: err}
	}
	defer cl.Close()

	p := newReadProgress(r.Topic)
	commit := func() error {
		offsets := p.committable()
		if !r.Commit || len(offsets) == 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clientOpTimeout)
		defer cancel()
		resp, err := t.adm.CommitOffsets(cctx, r.Group, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return &Error{Op: "commit offsets of group " + r.Group, Topic: r.Topic, Err: err}
		}
		return nil
	}
	// finish waits for the visits under way, then commits. Once ctx is
	// done it waits a bounded time: a visit still under way then is not
	// committed past (its record may still be written).
	finish := func(err error) error {
		if ctx.Err() != nil {
			p.waitUpTo(clientOpTimeout)
		} else {
			p.waitUpTo(-1)
		}
		return errors.Join(err, commit())
	}
	lastCommit := time.Now()
	for len(end) > 0 {
		pctx, cancel := context.WithTimeout(ctx, readIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return finish(err)
		}
		if fs.IsClientClosed() || (fs.NumRecords() == 0 && pctx.Err() != nil) {
			break // idle: what is left below the ends is not readable
		}
		var fetchErr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = &Error{Op: "read dead letters", Topic: r.Topic, Err: err}
			}
		})
		if fetchErr != nil {
			return finish(fetchErr)
		}
		for rec := range fs.RecordsAll() {
			part := rec.Partition
			stop, open := end[part]
			if !open || p.stopped(part) {
				delete(end, part)
				continue
			}
			if rec.Offset >= stop {
				delete(end, part)
				continue
			}
			if err := p.acquire(ctx); err != nil {
				return finish(err)
			}
			e, _ := t.codec.decode(rec) // a value that is not JSON is still a dead letter: Raw holds it
			r.Visit(e, p.start(rec))
			if rec.Offset+1 >= stop {
				delete(end, part)
			}
		}
		if time.Since(lastCommit) >= commitEvery {
			if err := commit(); err != nil {
				return finish(err)
			}
			lastCommit = time.Now()
		}
	}
	return finish(nil)
}

// readWindow bounds the visits under way at once (replays waiting for the
// broker's acknowledgement).
const readWindow = 1000

// readProgress tracks, per partition, the records visited in order and
// what became of them, so that the offset committed never passes a record
// not done, whatever order the visits finish in.
type readProgress struct {
	topic string
	sem   chan struct{}

	mu    sync.Mutex
	parts map[int32]*partProgress
}

type partProgress struct {
	queue   []*visitSlot // visited, oldest first, up to the first not done
	next    int64        // the offset to commit: after the last done in order
	epoch   int32
	stopped bool
	moved   bool // next moved since the last commit
}

type visitSlot struct {
	offset int64
	epoch  int32
	state  int8 // 0 under way, 1 done, 2 stop
}

func newReadProgress(topic string) *readProgress {
	return &readProgress{topic: topic, sem: make(chan struct{}, readWindow), parts: map[int32]*partProgress{}}
}

func (p *readProgress) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitUpTo returns once every visit started has finished, or after d
// (d < 0: no limit). A visit that finishes later frees its own slot.
func (p *readProgress) waitUpTo(d time.Duration) {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	taken := 0
	defer func() {
		for range taken {
			<-p.sem
		}
	}()
	for taken < cap(p.sem) {
		select {
		case p.sem <- struct{}{}:
			taken++
		case <-timeout:
			return
		}
	}
}

func (p *readProgress) stopped(part int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.parts[part]
	return pp != nil && pp.stopped
}

// start records a visit of rec and returns the function that ends it.
func (p *readProgress) start(rec *kgo.Record) func(transport.Visit) {
	slot := &visitSlot{offset: rec.Offset, epoch: rec.LeaderEpoch}
	p.mu.Lock()
	pp := p.parts[rec.Partition]
	if pp == nil {
		pp = &partProgress{}
		p.parts[rec.Partition] = pp
	}
	pp.queue = append(pp.queue, slot)
	p.mu.Unlock()
	var once sync.Once
	return func(v transport.Visit) {
		once.Do(func() {
			p.mu.Lock()
			if v == transport.VisitStop {
				slot.state = 2
			} else {
				slot.state = 1
			}
			pp.advance()
			p.mu.Unlock()
			<-p.sem
		})
	}
}

// advance moves the commit point past the visits done in order, and stops
// the partition at the first that was refused.
func (pp *partProgress) advance() {
	for len(pp.queue) > 0 {
		head := pp.queue[0]
		switch head.state {
		case 0:
			return
		case 2:
			pp.stopped = true
			return
		}
		pp.next, pp.epoch, pp.moved = head.offset+1, head.epoch, true
		pp.queue[0] = nil
		pp.queue = pp.queue[1:]
	}
}

// committable returns the offsets that moved since the last call.
func (p *readProgress) committable() kadm.Offsets {
	p.mu.Lock()
	defer p.mu.Unlock()
	var os kadm.Offsets
	for part, pp := range p.parts {
		if pp.moved {
			os.Add(kadm.Offset{Topic: p.topic, Partition: part, At: pp.next, LeaderEpoch: pp.epoch})
			pp.moved = false
		}
	}
	return os
}
