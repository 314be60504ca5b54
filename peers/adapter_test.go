package peers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"libx.net/eventstream"
)

// A watermill Publisher and Subscriber over Kafka mode, so that watermill's
// universal Pub/Sub suite can run against the bus.
//
// Record layout: the message's metadata are the event's headers, its UUID is
// the header uuidHeader (watermill-kafka's name), and its payload is the
// value: as it is when it is compact JSON (the bus writes JSON values), else
// as a JSON string of its base64 (encoding/json's []byte), marked by
// payloadHeader.
const (
	uuidHeader    = "_watermill_message_uuid"
	payloadHeader = "_watermill_payload"
	payloadBase64 = "base64"
)

// wmPublisher publishes with Emit, one bus for the publisher.
type wmPublisher struct {
	bus eventstream.EventBus
}

func newWMPublisher(cfg *eventstream.Config, opts ...eventstream.Option) (*wmPublisher, error) {
	bus, err := eventstream.New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	return &wmPublisher{bus: bus}, nil
}

// Publish emits the messages asynchronously, so that they share produce
// requests, and returns once the broker acknowledged all of them.
func (p *wmPublisher) Publish(topic string, msgs ...*message.Message) error {
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, msg := range msgs {
		data, headers := encodeMessage(msg)
		wg.Add(1)
		done := eventstream.WithAsync(func(err error) {
			errs[i] = err
			wg.Done()
		})
		if err := p.bus.Emit(msg.Context(), topic, data, eventstream.WithHeaders(headers), done); err != nil {
			errs[i] = err
			wg.Done()
			break // as watermill's publishers do: the rest is not sent
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *wmPublisher) Close() error { return p.bus.Close() }

func encodeMessage(msg *message.Message) (any, map[string]string) {
	headers := make(map[string]string, len(msg.Metadata)+2)
	maps.Copy(headers, msg.Metadata)
	headers[uuidHeader] = msg.UUID
	if isCompactJSON(msg.Payload) {
		return json.RawMessage(msg.Payload), headers
	}
	headers[payloadHeader] = payloadBase64
	return []byte(msg.Payload), headers
}

// isCompactJSON: encoding/json writes a RawMessage compacted, so only a
// compact one comes back byte for byte.
func isCompactJSON(b []byte) bool {
	if !json.Valid(b) {
		return false
	}
	var buf bytes.Buffer
	return json.Compact(&buf, b) == nil && bytes.Equal(buf.Bytes(), b)
}

func decodeMessage(e *eventstream.Event) (*message.Message, error) {
	var payload []byte
	switch {
	case e.Headers[payloadHeader] == payloadBase64:
		if err := e.Unmarshal(&payload); err != nil {
			return nil, err
		}
	case e.Raw != nil:
		payload = bytes.Clone(e.Raw)
	default:
		var err error
		if payload, err = json.Marshal(e.Data); err != nil {
			return nil, err
		}
	}
	id := e.Headers[uuidHeader]
	if id == "" {
		id = e.ID // a record another producer wrote
	}
	msg := message.NewMessage(id, payload)
	for k, v := range e.Headers {
		if k != uuidHeader && k != payloadHeader {
			msg.Metadata.Set(k, v)
		}
	}
	return msg, nil
}

// wmSubscriber is one bus with one subscription per Subscribe call, in the
// consumer group. A Nack hands the event back (eventstream.Requeue): it is
// delivered again, not counted as a failure. A subscription ends with Off:
// a message handed out and not acknowledged within handBackAfter of the
// subscription's end is handed back too, so Off leaves it to the group's
// next member (Kafka: uncommitted) instead of waiting for an Ack that will
// not come.
type wmSubscriber struct {
	bus   eventstream.EventBus
	group string

	mu     sync.Mutex
	closed bool
	subs   map[*wmSubscription]struct{}
}

// handBackAfter is how long a closing subscription still waits for the
// Ack of a message it handed out.
const handBackAfter = 500 * time.Millisecond

// newWMSubscriber: group "" means one group per topic, shared by every
// subscriber built this way (watermill's usual default group).
func newWMSubscriber(cfg *eventstream.Config, group string, opts ...eventstream.Option) (*wmSubscriber, error) {
	bus, err := eventstream.New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	return &wmSubscriber{bus: bus, group: group, subs: map[*wmSubscription]struct{}{}}, nil
}

type wmSubscription struct {
	bus  eventstream.EventBus
	sub  eventstream.Subscription
	out  chan *message.Message
	ctx  context.Context // the Subscribe ctx: cancelled when the subscription closes
	stop context.CancelFunc
	done chan struct{} // closed once out is closed
	err  error         // Off's, set before done is closed

	mu       sync.Mutex
	closing  bool
	handlers sync.WaitGroup
}

func (s *wmSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("subscriber closed")
	}
	sub := &wmSubscription{bus: s.bus, out: make(chan *message.Message), done: make(chan struct{})}
	sub.ctx, sub.stop = context.WithCancel(ctx)
	group := s.group
	if group == "" {
		group = topic + ".watermill"
	}
	var err error
	sub.sub, err = s.bus.On(topic, sub.handle, eventstream.WithConsumerGroup(group),
		eventstream.WithMaxRequeues(math.MaxInt)) // watermill redelivers a Nack as often as it comes
	if err != nil {
		sub.stop()
		return nil, err
	}
	s.subs[sub] = struct{}{}
	go func() {
		<-sub.ctx.Done()
		sub.close()
	}()
	return sub.out, nil
}

// Close closes every subscription, then the bus, and returns once the
// channels are closed.
func (s *wmSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := s.subs
	s.subs = map[*wmSubscription]struct{}{}
	s.mu.Unlock()
	for sub := range subs {
		sub.stop()
	}
	var errs []error
	for sub := range subs {
		<-sub.done
		errs = append(errs, sub.err)
	}
	errs = append(errs, withoutCutOff(s.bus.Close()))
	return errors.Join(errs...)
}

// handle delivers one event as a watermill message and waits for its Ack
// (success: the offset is committed) or Nack (handed back: delivered
// again).
func (s *wmSubscription) handle(ctx context.Context, e *eventstream.Event) error {
	if !s.enter() {
		// Closing: leave the event to the group, after a pause so that
		// the lane does not spin until Off takes it away.
		return eventstream.RequeueAfter(handBackAfter/10, "subscriber closing")
	}
	defer s.handlers.Done()
	msg, err := decodeMessage(e)
	if err != nil {
		return eventstream.Permanent(err) // never a watermill message: dead-lettered
	}
	mctx, cancel := context.WithCancel(s.ctx)
	defer cancel() // watermill: a message's context ends with its Ack or Nack
	msg.SetContext(mctx)
	select {
	case s.out <- msg:
	case <-s.ctx.Done():
		return eventstream.RequeueAfter(handBackAfter/10, "subscriber closing")
	}
	var closing <-chan time.Time
	subDone := s.ctx.Done()
	for {
		select {
		case <-msg.Acked():
			return nil
		case <-msg.Nacked():
			return eventstream.Requeue("nacked")
		case <-ctx.Done():
			return ctx.Err() // the bus is closing: not done, left to the group
		case <-subDone:
			// The subscription ends: an Ack may still come, for a while.
			t := time.NewTimer(handBackAfter)
			defer t.Stop()
			closing, subDone = t.C, nil
		case <-closing:
			return eventstream.RequeueAfter(handBackAfter/10, "not acknowledged before the subscriber closed")
		}
	}
}

func (s *wmSubscription) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.handlers.Add(1)
	return true
}

// close ends the subscription with Off (which lets it finish, or hand
// back, what it holds), then closes the channel once no handler can send
// on it.
func (s *wmSubscription) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.err = s.bus.Off(s.sub)
	if errors.Is(s.err, eventstream.ErrClosed) {
		s.err = nil
	}
	s.handlers.Wait()
	close(s.out)
	close(s.done)
}

// withoutCutOff drops the *ShutdownError that says Close cut off events
// nobody acknowledged: they stay uncommitted and are redelivered, which is
// what watermill expects of a closing subscriber. Any other error stays.
func withoutCutOff(err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, single := err.(*eventstream.ShutdownError); !single {
			errs = j.Unwrap()
		}
	}
	var keep []error
	for _, e := range errs {
		if se, ok := e.(*eventstream.ShutdownError); ok && se.Err == nil {
			continue
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}
