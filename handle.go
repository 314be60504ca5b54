package eventstream

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
)

// Handle adapts a handler of values of type T to an EventHandler: it
// decodes the event's data into a T once per attempt and calls h with the
// event and the value.
//
// The data is decoded the cheapest way the event allows: in memory mode,
// Data that already is a T (what Emit was given) is passed as it is, with
// no copy and no JSON; in Kafka mode the record's bytes (Event.Raw) are
// decoded straight into T, so with KafkaConfig.DecodeData set to
// DecodeDataNever nothing is decoded twice; otherwise (memory mode, Data of
// another type) Data goes through JSON into T. Data that cannot be decoded
// into T will not decode on a retry either: the event fails at once with a
// Permanent *DataDecodeError naming T and the reason, and goes to the
// dead-letter topic.
//
// In memory mode a T that holds pointers, maps or slices is shared with the
// emitter and every other consumer group: treat it as read-only, as the
// Event itself.
func Handle[T any](h func(ctx context.Context, e *Event, v T) error) EventHandler {
	if h == nil {
		return nil // On refuses it with ErrNilHandler
	}
	return func(ctx context.Context, e *Event) error {
		v, err := decodeAs[T](e)
		if err != nil {
			return Permanent(err)
		}
		return h(ctx, e, v)
	}
}

// DataDecodeError says why an event's data could not be decoded into the
// type a Handle handler takes.
type DataDecodeError struct {
	EventID string
	Type    string // the Go type, e.g. "main.Order"
	Err     error  // encoding/json's error
}

func (e *DataDecodeError) Error() string {
	return fmt.Sprintf("eventstream: data of event %s cannot be decoded into %s: %v", e.EventID, e.Type, e.Err)
}

func (e *DataDecodeError) Unwrap() error { return e.Err }

// decodeAs decodes e's data into a T; see Handle.
func decodeAs[T any](e *Event) (T, error) {
	if v, ok := e.Data.(T); ok {
		return v, nil // memory mode's own value, or one Kafka mode decoded already
	}
	var v T
	var err error
	switch d := e.Data.(type) {
	case json.RawMessage:
		err = json.Unmarshal(d, &v)
	default:
		err = e.Unmarshal(&v) // Kafka: Raw; memory: Data through JSON
	}
	if err != nil {
		return v, &DataDecodeError{EventID: e.ID, Type: reflect.TypeFor[T]().String(), Err: err}
	}
	return v, nil
}
