package session

import (
	"net/netip"
	"sync"
)

// gate counts the session's peer connections, open or opening, in total
// and per IP address, for engine.Config.Gate and the listener.
type gate struct {
	max, perIP int

	mu    sync.Mutex
	total int
	byIP  map[netip.Addr]int
}

func newGate(max, perIP int) *gate {
	return &gate{max: max, perIP: perIP, byIP: make(map[netip.Addr]int)}
}

// Admit reserves a slot for a connection with addr, or reports that a
// limit is reached. Loopback addresses are exempt from the per-IP limit:
// local clients and tests all share 127.0.0.1.
func (g *gate) Admit(addr netip.AddrPort) bool {
	ip := addr.Addr().Unmap()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.max {
		return false
	}
	if !ip.IsLoopback() {
		if g.byIP[ip] >= g.perIP {
			return false
		}
		g.byIP[ip]++
	}
	g.total++
	return true
}

// Release frees a slot Admit reserved for addr.
func (g *gate) Release(addr netip.AddrPort) {
	ip := addr.Addr().Unmap()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if !ip.IsLoopback() {
		if g.byIP[ip] <= 1 {
			delete(g.byIP, ip)
		} else {
			g.byIP[ip]--
		}
	}
}

// counts returns the connections counted now, for stats and tests.
func (g *gate) counts() (total int, ips int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total, len(g.byIP)
}
