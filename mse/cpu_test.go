//go:build linux

package mse

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// The machine the benchmarks run on may be shared: wall time then says
// more about the neighbours than about the code. These helpers measure
// CPU time instead.

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadCPU is the calling thread's CPU time so far.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuThroughput runs f b.N times on one locked thread and reports MB per
// CPU second, n bytes each time.
func cpuThroughput(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(n))
	t0 := threadCPU()
	for b.Loop() {
		f()
	}
	cpu := threadCPU() - t0
	b.ReportMetric(float64(b.N)*float64(n)/1e6/cpu.Seconds(), "cpu-MB/s")
}
