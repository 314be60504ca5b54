package eventmeta

import "context"

// ResumedKey is the context key marking a delivery that goes on after a
// wait (a retry after its backoff, an event held by an open circuit): the
// bus counted the delivery when it began.
type ResumedKey struct{}

// WithResumed returns ctx marked as a delivery that goes on.
func WithResumed(ctx context.Context) context.Context {
	return context.WithValue(ctx, ResumedKey{}, true)
}

// Resumed reports whether ctx belongs to a delivery that goes on.
func Resumed(ctx context.Context) bool {
	v, _ := ctx.Value(ResumedKey{}).(bool)
	return v
}
