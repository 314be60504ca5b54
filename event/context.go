package event

import (
	"context"

	"libx.net/eventstream/internal/eventmeta"
)

// Attempt returns which attempt of its event a handler's ctx belongs to: 1
// for the first try (which carries nothing, saving an allocation per
// event), 2 for the first retry, and so on. The bus's retry sets it; it
// cannot be set from outside the module.
func Attempt(ctx context.Context) int {
	if n, ok := ctx.Value(eventmeta.AttemptKey{}).(int); ok {
		return n
	}
	return 1
}

// The bus carries an event's creation context in an unexported field;
// its own packages reach it through eventmeta.
func init() {
	eventmeta.Install(
		func(e any) *eventmeta.Creation { return e.(*Event).creation },
		func(e any, c *eventmeta.Creation) { e.(*Event).creation = c })
	eventmeta.InstallHandling(func(e any) *eventmeta.Handling { return &e.(*Event).handling }, redelivered)
}

// redelivered copies e field by field, one Redelivery higher: a copy of the
// whole struct would read e's handling context, which another group's
// delivery of e may be claiming at that moment.
func redelivered(x any) any {
	e := x.(*Event)
	return &Event{
		ID: e.ID, Topic: e.Topic, CausationID: e.CausationID, CorrelationID: e.CorrelationID,
		Key: e.Key, Time: e.Time, Data: e.Data, Raw: e.Raw, Headers: e.Headers, Record: e.Record,
		Redelivery: e.Redelivery + 1, creation: e.creation,
	}
}
