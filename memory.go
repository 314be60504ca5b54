package eventstream

import (
	"libx.net/eventstream/internal/memory"
	"libx.net/eventstream/internal/transport"
)

// Memory mode: the in-process transport of internal/memory, on the bus's
// scheduler. Each subscription has one bounded lane per unit of
// concurrency (Config.Memory.BufferSize events queued or in hand); Emit
// waits for room in every consumer group's lane before it enqueues in any.
// Emits from handlers and dead letters never wait for room: they may run on
// the very worker a full lane waits for.
// With Memory.RetainEvents set, each topic keeps its last events for the
// groups that join later (internal/memory's retain.go).
func memoryTransport(mc *MemoryConfig) transportFactory {
	return func(h transport.Host) (transport.Transport, error) {
		return memory.NewRetaining(h, memory.Retention{Events: mc.RetainEvents, Age: mc.RetainFor}), nil
	}
}
