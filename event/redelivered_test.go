package event

import (
	"context"
	"reflect"
	"testing"
	"time"

	"libx.net/eventstream/internal/eventmeta"
)

// TestRedeliveredCopiesEveryField: the field-by-field copy of a hand-back
// misses no field an Event gains later, and leaves the handling context
// unbound.
func TestRedeliveredCopiesEveryField(t *testing.T) {
	e := &Event{ID: "id", Topic: "t", CausationID: "c", CorrelationID: "r", Key: "k",
		Time: time.Now(), Data: 1, Raw: []byte("1"), Headers: map[string]string{"h": "v"},
		Record: &Record{Partition: 1}, Redelivery: 2, creation: &eventmeta.Creation{}}
	eventmeta.Bind(e, context.Background())
	v := reflect.ValueOf(*e)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("field %s unset: set it here so that the copy is checked", v.Type().Field(i).Name)
		}
	}
	c := redelivered(e).(*Event)
	if c.Redelivery != 3 {
		t.Fatalf("Redelivery %d, want 3", c.Redelivery)
	}
	if !reflect.ValueOf(c.handling).IsZero() {
		t.Fatal("the copy's handling context is bound")
	}
	c.Redelivery, c.handling = e.Redelivery, e.handling
	if !reflect.DeepEqual(e, c) {
		t.Fatalf("copy %+v differs from %+v", c, e)
	}
}
