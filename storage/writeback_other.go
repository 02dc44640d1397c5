//go:build !linux

package storage

import "os"

// startWriteback is a no-op where the OS has no sync_file_range; Sync
// does all the flushing there.
func startWriteback(f *os.File, off, n int64) {}
