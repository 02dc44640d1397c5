//go:build !unix

package utp

import "time"

// CPUTime is unknown here: benchmarks report 0 CPU seconds.
func CPUTime() time.Duration { return 0 }
