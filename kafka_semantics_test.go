package eventstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// After a clean Close, nothing handled is delivered again: the next member
// of the group starts where the last one stopped.
func TestKafkaCleanShutdownNoRedelivery(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	group := eventstream.WithConsumerGroup("clean-" + topic)
	first := newEvents()
	b1 := newKafkaBus(t, brokers, nil)
	if _, err := b1.On(topic, first.handler, group, eventstream.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := b1.Emit(context.Background(), topic, i, eventstream.WithKey("k"+itoa(int64(i%7)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b1.Close(); err != nil { // drains: all 300 handled and committed
		t.Fatal(err)
	}
	if n := len(first.wait(t, 300)); n != 300 {
		t.Fatalf("first member handled %d", n)
	}
	second := newEvents()
	b2 := newKafkaBus(t, brokers, nil)
	if _, err := b2.On(topic, second.handler, group); err != nil {
		t.Fatal(err)
	}
	if err := b2.Emit(context.Background(), topic, "after"); err != nil {
		t.Fatal(err)
	}
	got := second.wait(t, 1)
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	second.mu.Lock()
	defer second.mu.Unlock()
	if len(second.got) != 1 || got[0].Data != "after" {
		t.Fatalf("the next member got %d events (first %v): handled events were delivered again", len(second.got), got[0].Data)
	}
}

// When On returns, a new group's starting positions are committed, so a
// member taking over a partition later (even after a crash) skips nothing.
func TestKafkaNewGroupStartCommitted(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 4)
	prod := rawClient(t, brokers)
	for i := 0; i < 10; i++ { // history the new group must not read
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(`1`), Partition: int32(i % 4)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	b := newKafkaBus(t, brokers, nil)
	group := "start-" + topic
	if _, err := b.On(topic, func(context.Context, *eventstream.Event) error { return nil }, eventstream.WithConsumerGroup(group)); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(prod)
	committed, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 4; p++ {
		c, ok := committed.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		if !ok || c.At != e.Offset {
			t.Errorf("partition %d: committed %v (%v), want the end offset %d", p, c.At, ok, e.Offset)
		}
	}
}

// A cluster that forbids creating topics gives a clear error naming the
// topic and the broker's reason; nothing is stuck.
func TestKafkaTopicCreationForbidden(t *testing.T) {
	const user, pass = "app", "app-secret"
	allow := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	brokers := eventstreamtest.KafkaCluster(t, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(eventstream.SASLPlain, "admin", "admin"),
		kfake.User(eventstream.SASLPlain, user, pass,
			allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationAll),
			allow(kmsg.ACLResourceTypeGroup, "*", kmsg.ACLOperationAll),
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral,
				Operation: kmsg.ACLOperationCreate, Allow: false},
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral,
				Operation: kmsg.ACLOperationCreate, Allow: false},
		))
	b := newKafkaBus(t, brokers, func(c *eventstream.Config) {
		c.Kafka.SASL = &eventstream.SASLConfig{Mechanism: eventstream.SASLPlain, Username: user, Password: pass}
	})
	topic := eventstreamtest.Topic(t)
	err := b.Emit(context.Background(), topic, 1)
	var ke *eventstream.KafkaError
	if !errors.As(err, &ke) || ke.Topic != topic || !strings.Contains(err.Error(), "create missing topic") {
		t.Fatalf("Emit to a topic the cluster will not create: %v", err)
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("the error does not carry the broker's reason: %v", err)
	}
	t.Logf("error: %v", err)
}

// The introspection endpoint works in distributed mode.
func TestKafkaDebugHandler(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	b := newKafkaBus(t, brokers, nil)
	topic := eventstreamtest.Topic(t)
	got := newEvents()
	if _, err := b.On(topic, got.handler, eventstream.WithConsumerGroup("debug-"+topic)); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit(context.Background(), topic, 1); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1)
	srv := httptest.NewServer(http.StripPrefix("/debug/eventstream", eventstream.DebugHandler(b)))
	defer srv.Close()
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	// The process span ends, and reaches the history, just after the
	// handler returned.
	var events []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; {
		events = nil
		get("/debug/eventstream/events", &events)
		if len(events) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(events) < 2 {
		t.Errorf("events: %v", events)
	}
	var topo map[string]any
	get("/debug/eventstream/topology", &topo)
	if !strings.Contains(fmtJSON(topo), "debug-"+topic) {
		t.Errorf("topology lacks the group: %v", topo)
	}
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A group the cluster does not let us join fails On at once, with the
// broker's reason, rather than at JoinTimeout.
func TestKafkaGroupForbidden(t *testing.T) {
	const user, pass = "no-groups", "pw"
	brokers := eventstreamtest.KafkaCluster(t, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(eventstream.SASLPlain, "admin", "admin"),
		kfake.User(eventstream.SASLPlain, user, pass,
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral,
				Operation: kmsg.ACLOperationAll, Allow: true}))
	b := newKafkaBus(t, brokers, func(c *eventstream.Config) {
		c.Kafka.SASL = &eventstream.SASLConfig{Mechanism: eventstream.SASLPlain, Username: user, Password: pass}
	})
	start := time.Now()
	_, err := b.On(eventstreamtest.Topic(t), func(context.Context, *eventstream.Event) error { return nil },
		eventstream.WithConsumerGroup("forbidden"))
	if !errors.Is(err, kerr.GroupAuthorizationFailed) || !errors.Is(err, eventstream.ErrKafka) {
		t.Fatalf("On: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("On took %v", d)
	}
	t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
