package lanes

import "github.com/petermattis/goid"

// A lane records which goroutine runs its handler, so that Off can tell a
// call from one of the subscription's own handlers (which must not wait for
// itself) from a call made anywhere else, a handler of another subscription
// included. Go has no goroutine-local storage and Off takes no context, so
// the identity is the goroutine's id, read by petermattis/goid (the
// runtime's g, in a few nanoseconds on the common architectures) rather
// than parsed from runtime.Stack.
func curg() uintptr { return uintptr(goid.Get()) }
