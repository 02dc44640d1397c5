package daemon

import "golang.org/x/sys/unix"

// dropMapped tells the kernel that the n bytes mapped at addr are not
// needed (MADV_DONTNEED): for a shared file map it unmaps the resident
// pages without changing the file, so they leave the RSS and are mapped
// again from the page cache on the next access.
func dropMapped(addr uintptr, n int64) error {
	if n <= 0 {
		return nil
	}
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(n), unix.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
