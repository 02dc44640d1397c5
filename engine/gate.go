package engine

import (
	"net"
	"net/netip"
	"sync"
)

// ConnGate admits peer connections against limits shared by many
// torrents, such as a session's global and per-IP limits.
type ConnGate interface {
	// Admit reserves a slot for a connection with addr, or reports that a
	// limit is reached.
	Admit(addr netip.AddrPort) bool
	// Release frees a slot Admit reserved.
	Release(addr netip.AddrPort)
}

// gatedConn holds a ConnGate slot until it is closed, whichever of the
// engine's paths closes it.
type gatedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and frees its slot (once).
func (c *gatedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Gated wraps conn, which holds a slot of gate for addr, so that closing
// it frees the slot. Incoming connections admitted by a listener are
// handed to AcceptIncoming this way.
func Gated(conn net.Conn, gate ConnGate, addr netip.AddrPort) net.Conn {
	return &gatedConn{Conn: conn, release: func() { gate.Release(addr) }}
}
