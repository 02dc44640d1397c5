package storage

import (
	"runtime"
	"slices"
	"sync"
	"time"
)

// dropLag is how many written bytes DropBehind keeps in the page cache:
// enough that the disk write of a range has long finished when its turn
// to be dropped comes, so the wait for it costs nothing. It is also the
// window over which the cost of writes is measured.
const dropLag = 32 << 20

// dropCost is the CPU per written byte (in nanoseconds) above which
// filling fresh page cache counts as expensive and DropBehind starts to
// drop behind: above what dropping behind costs (a write plus its share
// of the disk write), with room for noise, and well below what fresh
// pages the host must fault in cost (figures in docs/benchmarks.md).
const dropCost = 0.8

// fileRange is n bytes at off in file number file.
type fileRange struct {
	file   int
	off, n int64
}

// dropper carries out Options.DropBehind for a Dir. It times the writes
// in windows of dropLag bytes until one costs more than maxCost per byte;
// from then on it lists the written ranges and hands back those more
// than dropLag behind, to be dropped. It never goes back: while it drops,
// the kernel refills the pages it freed and the writes look cheap, which
// says nothing about fresh pages. A download can start cheap and turn
// expensive when the kernel's store of free memory it used recently runs
// out, so the timing goes on until it does.
type dropper struct {
	on      bool    // Options.DropBehind
	maxCost float64 // dropCost; tests change it

	mu       sync.Mutex
	dropping bool
	winBytes int64 // the current timing window
	winCPU   time.Duration
	// cached lists the written ranges not yet dropped, oldest first, and
	// cachedBytes their total (while dropping).
	cached      []fileRange
	cachedBytes int64
}

// timing reports whether the next write should be timed.
func (dr *dropper) timing() bool {
	if !dr.on {
		return false
	}
	dr.mu.Lock()
	defer dr.mu.Unlock()
	return !dr.dropping
}

// wrote records a written range and the CPU its write took (when timed).
// It reports whether the Dir drops behind, and returns the oldest ranges
// that are now more than dropLag behind, for the caller to drop.
func (dr *dropper) wrote(r fileRange, cpu time.Duration) (old []fileRange, drop bool) {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if !dr.dropping {
		dr.winBytes += r.n
		dr.winCPU += cpu
		if dr.winBytes < dropLag {
			return nil, false
		}
		cost := float64(dr.winCPU.Nanoseconds()) / float64(dr.winBytes)
		dr.winBytes, dr.winCPU = 0, 0
		if cost <= dr.maxCost {
			return nil, false
		}
		dr.dropping = true
	}
	dr.cached = append(dr.cached, r)
	dr.cachedBytes += r.n
	k := 0
	for dr.cachedBytes > dropLag {
		dr.cachedBytes -= dr.cached[k].n
		k++
	}
	old = slices.Clone(dr.cached[:k])
	dr.cached = slices.Delete(dr.cached, 0, k)
	return old, true
}

// uncache waits for r's disk write and drops it from the page cache. It
// is a hint: errors are ignored, and Sync reports real write failures.
func (d *Dir) uncache(r fileRange) {
	h, err := d.acquire(r.file, false)
	if err != nil {
		return
	}
	dropCached(h.f, r.off, r.n)
	d.release(h, false)
}

// cpuOf runs f and, if timed, returns the CPU time the calling thread
// spent in it (the goroutine is locked to its thread meanwhile).
func cpuOf(timed bool, f func()) time.Duration {
	if !timed {
		f()
		return 0
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	f()
	return threadCPU() - c0
}
