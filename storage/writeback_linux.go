package storage

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing f's dirty pages in
// [off, off+n) to disk without waiting for it. Sync at the end of a
// download then finds most pages clean, so the wait it adds shrinks from
// the whole file's writeback to the last stretch. Errors are ignored: the
// hint only moves work earlier, and Sync still reports real failures.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}

// dropCached waits until f's pages in [off, off+n) are on disk and drops
// them from the page cache (Options.DropBehind). Errors are ignored, as
// for startWriteback.
func dropCached(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		const waitAll = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
		if unix.SyncFileRange(int(fd), off, n, waitAll) == nil {
			unix.Fadvise(int(fd), off, n, unix.FADV_DONTNEED)
		}
	})
}

// threadCPU returns the CPU time the calling thread has used.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
