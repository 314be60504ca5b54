// Package peers measures EventStream against what a user would pick instead
// and runs the peers' own conformance checks against it. It holds tests and
// benchmarks only:
//
//   - benchmarks with baselines measured in the same run: a buffered channel
//     hand-off, raw franz-go with opaque 100-byte records, watermill's
//     GoChannel and watermill-kafka (Sarama); run them with
//     go test -run '^$' -bench . -count 5
//   - watermill's universal Pub/Sub suite (pubsub/tests) against Kafka mode,
//     through a watermill Publisher and Subscriber over the bus, and against
//     memory mode with retention on (Memory.RetainEvents).
//
// Kafka runs on an in-process kfake cluster, and on a real cluster too when
// EVENTSTREAM_KAFKA_BROKERS names one.
package peers
