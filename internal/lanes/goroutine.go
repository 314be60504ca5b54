package lanes

// A lane records which goroutine runs its handler, so that Off can tell a
// call from one of the subscription's own handlers (which must not wait for
// itself) from a call made anywhere else, a handler of another subscription
// included. Go has no goroutine-local storage and Off takes no context, so
// the identity is the address of the runtime's g of the goroutine: unique
// among live goroutines, never freed, read in a nanosecond (curg, in
// assembly where the architecture allows; the fallback parses the goroutine
// id from runtime.Stack, correct but slower).
