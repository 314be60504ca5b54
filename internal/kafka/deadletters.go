package kafka

import (
	"context"
	"errors"
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

	var (
		progress   kadm.Offsets // the offsets to commit
		stopped    = map[int32]bool{}
		lastCommit = time.Now()
	)
	commit := func() error {
		if !r.Commit || len(progress) == 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clientOpTimeout)
		defer cancel()
		resp, err := t.adm.CommitOffsets(cctx, r.Group, progress)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return &Error{Op: "commit offsets of group " + r.Group, Topic: r.Topic, Err: err}
		}
		progress, lastCommit = nil, time.Now()
		return nil
	}
	for len(end) > 0 {
		pctx, cancel := context.WithTimeout(ctx, readIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return errors.Join(err, commit())
		}
		if fs.IsClientClosed() || (fs.NumRecords() == 0 && pctx.Err() != nil) {
			break // idle: what is left below the ends is not readable
		}
		var fetchErr error
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = &Error{Op: "read dead letters", Topic: r.Topic, Err: err}
			}
		})
		if fetchErr != nil {
			return errors.Join(fetchErr, commit())
		}
		for rec := range fs.RecordsAll() {
			p := rec.Partition
			stop, open := end[p]
			if !open || stopped[p] {
				continue
			}
			if rec.Offset >= stop {
				delete(end, p)
				continue
			}
			e, _ := t.codec.decode(rec) // a value that is not JSON is still a dead letter: Raw holds it
			if r.Visit(e) == transport.VisitStop {
				stopped[p] = true
				delete(end, p)
				continue
			}
			progress.Add(kadm.NewOffsetFromRecord(rec))
			if rec.Offset+1 >= stop {
				delete(end, p)
			}
		}
		if time.Since(lastCommit) >= commitEvery {
			if err := commit(); err != nil {
				return err
			}
		}
	}
	return commit()
}
