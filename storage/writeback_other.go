//go:build !linux

package storage

import (
	"os"
	"time"
)

// startWriteback is a no-op where the OS has no sync_file_range; Sync
// does all the flushing there.
func startWriteback(f *os.File, off, n int64) {}

// dropCached is a no-op here: without sync_file_range the data cannot be
// known to be on disk, and dropping dirty pages would not free them.
func dropCached(f *os.File, off, n int64) {}

// threadCPU is 0 here: writes are never found expensive, so DropBehind
// leaves the page cache alone (dropCached could not act anyway).
func threadCPU() time.Duration { return 0 }
