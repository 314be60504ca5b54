package eventstream

// Temporary: stands in for the Kafka transport while it moves to
// internal/kafka. Delete this file when distributed.go wires internal/kafka.

import (
	"errors"
	"fmt"

	"libx.net/eventstream/internal/transport"
)

func newKafkaTransport(transport.Host, KafkaConfig) (transport.Transport, error) {
	return nil, errors.New("eventstream: the Kafka transport is being moved")
}

type KafkaError struct {
	Op    string
	Topic string
	Err   error
}

func (e *KafkaError) Error() string { return fmt.Sprintf("eventstream: kafka: %s: %v", e.Op, e.Err) }

type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return e.Err.Error() }
