package eventstream_test

import (
	"context"
	"testing"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Flow control against a real Apache Kafka cluster (EVENTSTREAM_KAFKA_BROKERS;
// skipped without one): an open circuit holds uncommitted records and
// resumes, a producer's duplicate is handled once, and a typed handler
// decodes the record's bytes straight into its type. Topics and groups are
// named for the test, so runs sharing a broker do not meet.
func TestKafkaRealFlowControl(t *testing.T) {
	brokers := eventstreamtest.RealKafkaBrokers(t)
	t.Run("circuit", func(t *testing.T) {
		topic := eventstreamtest.Topic(t)
		testCircuitOutage(t, kafkaTestConfig(brokers), topic, topic+".billing")
	})
	t.Run("dedup", func(t *testing.T) { testDedupProducerDuplicate(t, brokers) })
	t.Run("typed", func(t *testing.T) {
		b := newKafkaBus(t, brokers, func(cfg *eventstream.Config) { cfg.Kafka.DecodeData = eventstream.DecodeDataNever })
		topic := eventstreamtest.Topic(t)
		got := make(chan order, 1)
		if _, err := b.On(topic, eventstream.Handle(func(_ context.Context, _ *eventstream.Event, o order) error {
			got <- o
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit(context.Background(), topic, order{ID: 42, Items: []item{{SKU: "a-1"}}}); err != nil {
			t.Fatal(err)
		}
		if o := <-got; o.ID != 42 || len(o.Items) != 1 || o.Items[0].SKU != "a-1" {
			t.Errorf("handler got %+v", o)
		}
	})
}
