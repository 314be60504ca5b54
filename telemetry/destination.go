package telemetry

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Sender is the emit-side telemetry of one transport (one messaging.system):
// it hands out a Destination per topic, built on first use and cached.
type Sender struct {
	t      *Telemetry
	system string
	// topics is read on every Emit; sync.Map keeps that lock-free and
	// allocation-free, and a new topic costs O(1) however many exist.
	topics sync.Map // string → *Destination
}

// Sender returns the emit-side telemetry for system ("memory", "kafka"); the
// same *Sender for the same system.
func (t *Telemetry) Sender(system string) *Sender {
	t.sendersMu.Lock()
	defer t.sendersMu.Unlock()
	if s, ok := t.senders[system]; ok {
		return s
	}
	if t.senders == nil {
		t.senders = make(map[string]*Sender)
	}
	s := &Sender{t: t, system: system}
	t.senders[system] = s
	return s
}

// System returns the messaging.system value of the sender.
func (s *Sender) System() string { return s.system }

// Destination returns the telemetry of sends to topic. The read path takes no
// lock and allocates nothing.
func (s *Sender) Destination(topic string) *Destination {
	if d, ok := s.topics.Load(topic); ok {
		return d.(*Destination)
	}
	d, _ := s.topics.LoadOrStore(topic, s.t.newDestination(s.system, topic))
	return d.(*Destination)
}

// Destination is the telemetry of sends to one topic: span name, static span
// attributes and metric attribute sets, built once.
type Destination struct {
	t         *Telemetry
	topic     string
	spanName  string
	spanAttrs []attribute.KeyValue
	metricKVs []attribute.KeyValue
	ok        []metric.AddOption
	okRec     []metric.RecordOption
	errs      errorSets
}

func (t *Telemetry) newDestination(system, topic string) *Destination {
	d := &Destination{t: t, topic: topic, spanName: OperationSend + " " + topic}
	d.spanAttrs = []attribute.KeyValue{
		KeySystem.String(system),
		KeyOperationType.String(OperationSend),
		KeyOperationName.String(OperationSend),
		KeyDestination.String(topic),
	}
	if system == SystemKafka && t.serverAddr != "" {
		d.spanAttrs = append(d.spanAttrs, KeyServerAddress.String(t.serverAddr))
		if t.serverPort > 0 {
			d.spanAttrs = append(d.spanAttrs, KeyServerPort.Int(t.serverPort))
		}
	}
	d.metricKVs = []attribute.KeyValue{
		KeySystem.String(system),
		KeyOperationName.String(OperationSend),
		KeyDestination.String(topic),
	}
	opt := metric.WithAttributeSet(attribute.NewSet(d.metricKVs...))
	d.ok = []metric.AddOption{opt}
	d.okRec = []metric.RecordOption{opt}
	return d
}

// Topic returns the destination's topic.
func (d *Destination) Topic() string { return d.topic }

// SpanName returns the send span name, "send {topic}".
func (d *Destination) SpanName() string { return d.spanName }

// AppendSpanAttributes appends the static send span attributes to dst.
func (d *Destination) AppendSpanAttributes(dst []attribute.KeyValue) []attribute.KeyValue {
	return append(dst, d.spanAttrs...)
}

// SpanAttributeCount is the number of attributes AppendSpanAttributes appends.
func (d *Destination) SpanAttributeCount() int { return len(d.spanAttrs) }

// RecordSend records one send attempt: messaging.client.sent.messages and
// messaging.client.operation.duration, with error.type when err is not nil.
// Pass the ctx holding the send span so that it becomes the exemplar.
func (d *Destination) RecordSend(ctx context.Context, dur time.Duration, err error) {
	add, rec := d.ok, d.okRec
	if err != nil {
		o := d.errs.get(ErrorType(err), d.metricKVs)
		add, rec = o.add, o.rec
	}
	d.t.inst.SentMessages.Add(ctx, 1, add...)
	d.t.inst.OperationDuration.Record(ctx, dur.Seconds(), rec...)
}
