package event

import (
	"regexp"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewIDIsTimeOrderedUUIDv7(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		e := New("t", nil)
		if !re.MatchString(e.ID) {
			t.Fatalf("id %q is not a UUIDv7", e.ID)
		}
		if seen[e.ID] {
			t.Fatalf("duplicate id %s", e.ID)
		}
		seen[e.ID] = true
		u, err := uuid.Parse(e.ID)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("uuid.Parse(%s): %v version %v variant %v", e.ID, err, u.Version(), u.Variant())
		}
		sec, nsec := u.Time().UnixTime()
		if d := e.Time.Sub(time.Unix(sec, nsec)); d < 0 || d > time.Millisecond {
			t.Fatalf("id time %v vs event time %v", time.Unix(sec, nsec), e.Time)
		}
	}
	// Ids taken at least 1ms apart sort in time order.
	a := New("t", nil)
	time.Sleep(2 * time.Millisecond)
	b := New("t", nil)
	if a.ID >= b.ID {
		t.Fatalf("later id %s sorts before earlier %s", b.ID, a.ID)
	}
}

func TestNewAllocatesTwice(t *testing.T) {
	if n := testing.AllocsPerRun(1000, func() { _ = New("topic", nil) }); n != 2 {
		t.Fatalf("New allocates %v times, want 2 (the event, its id)", n)
	}
}

func TestUnmarshalMemoryAndRaw(t *testing.T) {
	var v struct{ A int }
	e := New("t", map[string]any{"A": 3})
	if err := e.Unmarshal(&v); err != nil || v.A != 3 {
		t.Fatalf("memory Unmarshal: %v %+v", err, v)
	}
	e = &Event{Raw: []byte(`{"A":4}`)}
	if err := e.Unmarshal(&v); err != nil || v.A != 4 {
		t.Fatalf("raw Unmarshal: %v %+v", err, v)
	}
	e = &Event{Raw: []byte(`not json`)}
	if err := e.Unmarshal(&v); err == nil {
		t.Fatal("Unmarshal of a non-JSON body did not fail")
	}
}
