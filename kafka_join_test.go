package eventstream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"libx.net/eventstream"
	"libx.net/eventstream/eventstreamtest"
)

// Two replicas of a service start together: both join a new group at the
// same moment and each emits as soon as its own On returns. The member
// assigned nothing must not return before the group's starting position
// is fixed, or its event lies before it and is never delivered.
func TestKafkaNewGroupMembersStartTogether(t *testing.T) {
	testMembersStartTogether(t, eventstreamtest.KafkaCluster(t))
}

func TestKafkaRealNewGroupMembersStartTogether(t *testing.T) {
	testMembersStartTogether(t, eventstreamtest.RealKafkaBrokers(t))
}

func testMembersStartTogether(t *testing.T, brokers []string) {
	topic := eventstreamtest.Topic(t)
	createTopic(t, brokers, topic, 1)
	replicas := []eventstream.EventBus{quietKafkaBus(t, brokers, nil), quietKafkaBus(t, brokers, nil)}
	const rounds = 20
	var mu sync.Mutex
	got := map[string]bool{}
	missed := 0
	for round := range rounds {
		group := fmt.Sprintf("together-%d-%s", round, topic)
		var wg sync.WaitGroup
		subs := make([]eventstream.Subscription, len(replicas))
		errs := make([]error, len(replicas))
		for i, b := range replicas {
			wg.Go(func() {
				sub, err := b.On(topic, func(_ context.Context, e *eventstream.Event) error {
					var s string
					if err := e.Unmarshal(&s); err == nil {
						mu.Lock()
						got[s] = true
						mu.Unlock()
					}
					return nil
				}, eventstream.WithConsumerGroup(group))
				if err != nil {
					errs[i] = err
					return
				}
				subs[i] = sub
				errs[i] = b.Emit(context.Background(), topic, fmt.Sprintf("%d/%d", round, i))
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := 0
			for i := range replicas {
				if got[fmt.Sprintf("%d/%d", round, i)] {
					n++
				}
			}
			mu.Unlock()
			if n == len(replicas) || time.Now().After(deadline) {
				missed += len(replicas) - n
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i, b := range replicas {
			if err := b.Off(subs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if missed > 0 {
		t.Fatalf("%d of %d events emitted right after On returned were never delivered", missed, rounds*len(replicas))
	}
}
