//go:build linux

package utp

import (
	"net"

	"golang.org/x/sys/unix"
)

// SetSocketBuffers asks for size-byte kernel buffers on uc, beyond the
// system's limit when the process may (root): a burst of large uTP packets
// overflows the default buffer. It is best effort.
func SetSocketBuffers(uc *net.UDPConn, size int) {
	_ = uc.SetReadBuffer(size)
	_ = uc.SetWriteBuffer(size)
	if rc, err := uc.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
		})
	}
}
