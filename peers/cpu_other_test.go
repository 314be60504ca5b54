//go:build !unix

package peers_test

import "time"

// processCPU is unknown here: cpu-ns/event reads 0.
func processCPU() time.Duration { return 0 }
