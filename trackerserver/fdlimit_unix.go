//go:build unix

package trackerserver

import "syscall"

// fileLimit returns the process's soft limit on open files, 0 if unknown.
// (Go's runtime has already raised it to the hard limit at start.)
func fileLimit() uint64 {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 0
	}
	return uint64(r.Cur)
}
