package eventstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"libx.net/eventstream/eventstreamtest"
)

func TestRawLatency(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	p, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer p.Close()
	adm := kadm.NewClient(p)
	ctx := context.Background()
	adm.CreateTopic(ctx, -1, -1, nil, "tt")
	assigned := make(chan struct{}, 10)
	c, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("tt"),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { assigned <- struct{}{} }),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer c.Close()
	<-assigned
	go func() {
		for i := 0; i < 5; i++ {
			time.Sleep(50 * time.Millisecond)
			p.ProduceSync(ctx, &kgo.Record{Topic: "tt", Value: []byte(time.Now().Format(time.RFC3339Nano))})
		}
	}()
	n := 0
	for n < 5 {
		fs := c.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			ts, _ := time.Parse(time.RFC3339Nano, string(r.Value))
			t.Logf("p%d latency %v", r.Partition, time.Since(ts))
			n++
		})
	}
}
