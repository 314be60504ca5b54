package peers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sync"

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

// errNacked is what the handler returns for a Nack: the bus's retry policy
// delivers the event again.
var errNacked = errors.New("watermill message nacked")

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

// wmSubscriber gives each Subscribe call a bus of its own with one
// subscription in the consumer group, as watermill-kafka gives each a
// Sarama consumer group client. A subscription ends by closing its bus, not
// by Off: Close cuts off a handler still waiting for an Ack once
// Config.ShutdownTimeout has passed and leaves its event uncommitted for the
// group's next member, whereas Off waits for every handler to return.
type wmSubscriber struct {
	newConfig func() *eventstream.Config
	opts      []eventstream.Option
	group     string

	mu     sync.Mutex
	closed bool
	subs   map[*wmSubscription]struct{}
}

// newWMSubscriber: group "" means one group per topic, shared by every
// subscriber built this way (watermill's usual default group).
func newWMSubscriber(newConfig func() *eventstream.Config, group string, opts ...eventstream.Option) *wmSubscriber {
	return &wmSubscriber{newConfig: newConfig, opts: opts, group: group, subs: map[*wmSubscription]struct{}{}}
}

type wmSubscription struct {
	bus  eventstream.EventBus
	out  chan *message.Message
	ctx  context.Context // the Subscribe ctx: cancelled when the subscription closes
	stop context.CancelFunc
	done chan struct{} // closed once out is closed
	err  error         // the bus's Close, set before done is closed

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
	bus, err := eventstream.New(s.newConfig(), s.opts...)
	if err != nil {
		return nil, err
	}
	sub := &wmSubscription{bus: bus, out: make(chan *message.Message), done: make(chan struct{})}
	sub.ctx, sub.stop = context.WithCancel(ctx)
	group := s.group
	if group == "" {
		group = topic + ".watermill"
	}
	if _, err := bus.On(topic, sub.handle, eventstream.WithConsumerGroup(group)); err != nil {
		sub.stop()
		return nil, errors.Join(err, bus.Close())
	}
	s.subs[sub] = struct{}{}
	go func() {
		<-sub.ctx.Done()
		sub.close()
	}()
	return sub.out, nil
}

// Close closes every subscription and returns once their channels are
// closed.
func (s *wmSubscriber) Close() error {
	s.mu.Lock()
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
	return errors.Join(errs...)
}

// handle delivers one event as a watermill message and waits for its Ack
// (success: the offset is committed) or Nack (an error: delivered again).
func (s *wmSubscription) handle(ctx context.Context, e *eventstream.Event) error {
	if !s.enter() {
		<-ctx.Done() // closing: leave the event to the group
		return ctx.Err()
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
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-msg.Acked():
		return nil
	case <-msg.Nacked():
		return errNacked
	case <-ctx.Done():
		// The bus is closing and gave up waiting (the subscription's own
		// ctx ending does not end the wait: an Ack may still come).
		return ctx.Err()
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

// close closes the bus (which waits up to ShutdownTimeout for handlers
// still holding a message, then cuts them off, leaving their events
// uncommitted), then the channel once no handler can send on it.
func (s *wmSubscription) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.err = withoutCutOff(s.bus.Close())
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
