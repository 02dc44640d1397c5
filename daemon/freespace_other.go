//go:build !unix && !windows

package daemon

// freeSpace reports -1 (unknown) where there is no statfs.
func freeSpace(path string) int64 { return -1 }
