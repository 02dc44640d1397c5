//go:build unix

package daemon

import "syscall"

// freeSpace reports the bytes available to us under path, or -1.
func freeSpace(path string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
