package event

import "context"

type attemptKey struct{}

// WithAttempt returns ctx carrying the attempt number of the current delivery
// (1 for the first try). The retry middleware sets it; telemetry reads it.
func WithAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// Attempt returns the attempt number carried by ctx; 1 when none is set,
// because the first try carries nothing (saving an allocation per event).
func Attempt(ctx context.Context) int {
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 1
}

// SubscriptionInfo describes a subscription to middleware built per
// subscription (telemetry builds its attribute sets once from it).
type SubscriptionInfo struct {
	// Topic subscribed to.
	Topic string
	// Group is the consumer group; for a subscription without one, the
	// generated name that makes it a group of its own.
	Group string
	// Name identifies the subscription within the process.
	Name string
	// System is the messaging.system value of the transport: "memory" or "kafka".
	System string
}
