//go:build !linux

package utp

import "net"

// SetSocketBuffers asks for size-byte kernel buffers on uc; best effort.
func SetSocketBuffers(uc *net.UDPConn, size int) {
	_ = uc.SetReadBuffer(size)
	_ = uc.SetWriteBuffer(size)
}
