//go:build !linux

package trackerserver

import (
	"context"
	"net"
)

// serveUDPWorkers answers packets on pc with workers goroutines until pc
// is closed. Batched socket I/O is Linux-only; elsewhere every worker
// reads one packet at a time.
func (s *Server) serveUDPWorkers(ctx context.Context, pc net.PacketConn, uc *net.UDPConn, workers int) error {
	return s.serveUDPEach(ctx, pc, uc, workers)
}
