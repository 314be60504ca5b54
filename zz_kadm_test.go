package eventstream_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"libx.net/eventstream/eventstreamtest"
)

func TestKadm(t *testing.T) {
	brokers := eventstreamtest.KafkaCluster(t)
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	r, err := adm.CreateTopic(ctx, -1, -1, nil, "tt")
	t.Logf("create %+v %v", r, err)
	d, err := adm.ListTopics(ctx, "tt")
	t.Logf("list %+v %v", d, err)
	l, err := adm.ListEndOffsets(ctx, "tt")
	t.Logf("ends %+v %v", l, err)
	l, err = adm.ListStartOffsets(ctx, "tt")
	t.Logf("starts %+v %v", l, err)
}
