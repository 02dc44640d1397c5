//go:build !linux

package storage

import "os"

// startWriteback is a no-op where the OS has no sync_file_range; Sync
// does all the flushing there.
func startWriteback(f *os.File, off, n int64) {}

// dropCached is a no-op here: without sync_file_range the data cannot be
// known to be on disk, and dropping dirty pages would not free them.
func dropCached(f *os.File, off, n int64) {}
