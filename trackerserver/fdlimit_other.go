//go:build !unix

package trackerserver

// fileLimit returns 0: the system has no per-process file limit to read.
func fileLimit() uint64 { return 0 }
