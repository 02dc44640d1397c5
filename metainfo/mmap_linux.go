//go:build linux

package metainfo

import (
	"os"
	"syscall"
)

// mmapSupported: large files are hashed straight from the page cache.
const mmapSupported = true

// mapWindow maps n bytes of f from off (a multiple of the page size)
// read-only, and asks the kernel to start reading them in now, since they
// are hashed soon: this is the read-ahead that a cold cache needs.
func mapWindow(f *os.File, off int64, n int) ([]byte, error) {
	b, err := syscall.Mmap(int(f.Fd()), off, n, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	_ = syscall.Madvise(b, syscall.MADV_WILLNEED) // a hint: failure only costs speed
	return b, nil
}

func unmapWindow(b []byte) { _ = syscall.Munmap(b) }
