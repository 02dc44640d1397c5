//go:build !linux

package trackerserver

import (
	"context"
	"net"
)

// udpWorker answers packets on pc until it is closed. Batched socket I/O
// is Linux-only; elsewhere packets go one at a time.
func (s *Server) udpWorker(ctx context.Context, pc net.PacketConn, uc *net.UDPConn) error {
	return s.udpLoop(ctx, pc, uc)
}
