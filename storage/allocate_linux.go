package storage

import (
	"errors"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// allocator reserves a range's disk blocks (fallocate) just before the
// range is first written. ext4 then maps the write onto allocated blocks
// instead of reserving them 4 KiB at a time for delayed allocation, which
// took more of a download's CPU than the copy into the page cache. Only
// the written ranges are reserved, so the file stays sparse elsewhere.
type allocator struct {
	off atomic.Bool // the file system does not support it
}

// reserve asks for [off, off+n) of f's blocks. Failures are left to the
// write that follows, which reports a full disk itself.
func (a *allocator) reserve(f *os.File, off, n int64) {
	if a.off.Load() || n <= 0 {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		for {
			err := unix.Fallocate(int(fd), 0, off, n)
			if err == unix.EINTR {
				continue
			}
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
				a.off.Store(true)
			}
			return
		}
	})
}
