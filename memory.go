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
func newMemoryTransport(h transport.Host) (transport.Transport, error) { return memory.New(h), nil }
