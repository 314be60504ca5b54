package middleware

// PanicStacker is implemented by errors that carry the stack of a recovered
// panic, as *PanicError does. When a handler's error has one in its chain,
// the bus's process span records that stack in a "panic" span event, so a
// recover middleware of your own can have its panics traced as Recover's
// are.
type PanicStacker interface{ PanicStack() []byte }
