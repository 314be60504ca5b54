// Command eventstream inspects and repairs an EventStream deployment on
// Kafka: it lists the dead letters of a topic, replays them once the bug
// that killed them is fixed, and tails a topic's events.
//
//	eventstream list   -topic orders [filters] [-n 100] [-json]
//	eventstream replay -topic orders [filters] [-dry-run] [-limit n] [-to-group g] [-replay-group name]
//	eventstream tail   -topic orders [-from-beginning] [-n count] [-json]
//
// Filters (list and replay): -group (the consumer group that gave up),
// -error-type, -since and -until (RFC 3339, or a duration ago such as 2h),
// -id (comma-separated original event ids). The dead-letter topic is
// "<topic>.dlq" unless -dlq names another.
//
// Every command takes -brokers (default $EVENTSTREAM_KAFKA_BROKERS, else
// 127.0.0.1:9092). Traces of replays are exported over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
//
// Exit codes: 0 done; 1 some dead letters could not be replayed (they stay
// in the dead-letter topic, and the next replay tries them again); 2 usage
// (unknown command, bad flag); 3 Kafka could not be reached or read; 130
// interrupted.
//
// Install: go install libx.net/eventstream/cmd/eventstream@latest
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
