package telemetry

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"libx.net/eventstream/history"
	"libx.net/eventstream/telemetry"
)

// history is the most recent operations: sends and process attempts in two
// preallocated rings, so that a producer and its consumers, which write one
// kind each, never write the same memory. A reader merges them.
type historyRings struct {
	sends, processes *ring
}

func newHistory(size int) *historyRings {
	return &historyRings{sends: newRing(size), processes: newRing(size)}
}

// recent returns up to n entries, newest (latest ended) first; as many as
// one ring holds when n <= 0.
func (h *historyRings) recent(n int) []history.Entry {
	size := len(h.sends.slots)
	n = min(n, size)
	recs := h.sends.recent(n, nil)
	recs = h.processes.recent(n, recs)
	slices.SortStableFunc(recs, func(a, b record) int { return cmp.Compare(b.start+int64(b.dur), a.start+int64(a.dur)) })
	if len(recs) > n {
		recs = recs[:n]
	}
	out := make([]history.Entry, len(recs))
	for i := range recs {
		out[i] = recs[i].entry()
	}
	return out
}

// ring is a preallocated ring of records. Writers take a position with one
// atomic add and lock only their slot; a reader locks one slot at a time.
type ring struct {
	pos   atomic.Uint64 // positions handed out; position p lives in slot (p-1) % len
	slots []slot
}

type slot struct {
	lock atomic.Uint32 // 1 while a writer or a reader holds the slot
	seq  uint64        // the position written here; 0: never written
	rec  record
}

// record is an Entry before formatting. It holds copies of small fields
// only, never a reference into an event (whose id may be a view of a Kafka
// fetch buffer): ids of up to idCap bytes are copied into the record, longer
// ones and error messages are cloned.
type record struct {
	labels  *labels      // immutable, shared by the operations of a series
	rare    *recordExtra // nil but for failures and long ids
	op      uint8        // opSend or opProcess
	idLen   uint8        // bytes of id used; 0 with rare.longID set
	attempt int32
	start   int64 // wall clock, Unix nanoseconds
	dur     time.Duration
	id      [idCap]byte
	traceID trace.TraceID // zero: no span recorded
	spanID  trace.SpanID
	lineage lineage
}

// recordExtra holds what few records have, out of line so that the ring's
// slots stay small (they are written on every event).
type recordExtra struct {
	longID                         string
	longCausation, longCorrelation string
	errMsg                         string // set for a failure, or a hand-back's reason
	failed                         bool
	requeued                       bool
	redelivery                     int32
}

func (r *record) extra() *recordExtra {
	if r.rare == nil {
		r.rare = new(recordExtra)
	}
	return r.rare
}

const (
	opSend = iota
	opProcess

	idCap = 36 // a UUID, the ids of events emitted here

	// maxErrorLen bounds the error message kept per entry: a message that
	// quotes a payload must not make the history hold payloads.
	maxErrorLen = 512
)

func newRing(size int) *ring { return &ring{slots: make([]slot, size)} }

// fill copies what every operation's record takes from its event, outcome
// and span: the id, the error (if any), and the span's ids when it records.
func (r *record) fill(id string, err error, span trace.Span) {
	r.setID(id)
	if err != nil {
		r.setError(err)
	}
	if span != nil && span.IsRecording() {
		sc := span.SpanContext()
		r.traceID, r.spanID = sc.TraceID(), sc.SpanID()
	}
}

// setID copies id into r.
func (r *record) setID(id string) {
	if len(id) <= idCap {
		r.idLen = uint8(copy(r.id[:], id))
		return
	}
	r.extra().longID = strings.Clone(id)
}

// setError keeps a copy of err's message, cut to maxErrorLen bytes.
func (r *record) setError(err error) {
	x := r.extra()
	x.failed = true
	msg := err.Error()
	if len(msg) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	x.errMsg = strings.Clone(msg)
}

func (s *slot) acquire() {
	for i := 0; !s.lock.CompareAndSwap(0, 1); i++ {
		if i > 16 {
			runtime.Gosched()
		}
	}
}

func (s *slot) release() { s.lock.Store(0) }

// put writes rec as the newest entry.
func (r *ring) put(rec *record) {
	p := r.pos.Add(1)
	s := &r.slots[(p-1)%uint64(len(r.slots))]
	s.acquire()
	s.seq, s.rec = p, *rec
	s.release()
}

// recent appends up to n of the newest records to recs, newest first. A
// record whose writer has taken its position but not yet written it is
// left out.
func (r *ring) recent(n int, recs []record) []record {
	size := uint64(len(r.slots))
	end := r.pos.Load()
	for p, got := end, 0; p > 0 && end-p < size && got < n; p-- {
		s := &r.slots[(p-1)%size]
		s.acquire()
		ok := s.seq == p
		if ok {
			recs = append(recs, s.rec)
			got++
		}
		s.release()
	}
	return recs
}

func (r *record) entry() history.Entry {
	e := history.Entry{
		Topic:    r.labels.topic,
		Start:    time.Unix(0, r.start),
		Duration: r.dur,
		Status:   history.StatusOK,
	}
	e.EventID = string(r.id[:r.idLen])
	if x := r.rare; x != nil {
		if x.longID != "" {
			e.EventID = x.longID
		}
		if x.failed {
			e.Status, e.Error = history.StatusError, x.errMsg
		}
		if x.requeued {
			e.Status, e.Error = history.StatusRequeued, x.errMsg
		}
		e.Redelivery = int(x.redelivery)
	}
	if r.op == opProcess {
		e.Operation = telemetry.OperationProcess
		e.Group, e.Subscription, e.Attempt = r.labels.group, r.labels.subscription, int(r.attempt)
	} else {
		e.Operation = telemetry.OperationSend
	}
	if r.traceID.IsValid() {
		e.TraceID, e.SpanID = r.traceID.String(), r.spanID.String()
	}
	r.fillEntry(&e)
	return e
}
