//go:build unix

package utp

import (
	"syscall"
	"time"
)

// CPUTime is the process's user plus system CPU time, for benchmarks
// (exported to the package's external tests).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
