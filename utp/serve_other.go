//go:build !linux

package utp

import (
	"net"
	"net/netip"
)

func serveBatched(*net.UDPConn, *Socket, func([]byte, netip.AddrPort)) (bool, error) {
	return false, nil
}
