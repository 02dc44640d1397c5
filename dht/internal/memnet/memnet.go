// Package memnet is an in-memory datagram network for tests and
// simulations of the DHT: thousands of nodes exchange packets through
// channels instead of sockets, with UDP's semantics (datagrams are copied,
// delivered whole or dropped when the receiver's queue is full or the
// receiver is gone).
package memnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// QueueLen is the number of datagrams a Conn buffers before dropping.
const QueueLen = 256

// Network connects the Conns it created. Each gets its own IP address
// (10.x.y.z), so per-IP logic (tokens, rate limits) behaves as on the
// Internet.
type Network struct {
	mu    sync.Mutex
	conns map[netip.AddrPort]*Conn
	next  uint32

	// Sent and Dropped count datagrams for reports.
	Sent, Dropped atomic.Uint64
}

// New returns an empty network.
func New() *Network {
	return &Network{conns: make(map[netip.AddrPort]*Conn)}
}

// Listen returns a Conn at a fresh address.
func (n *Network) Listen() *Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next++
	v := n.next
	ip := netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
	return n.listenLocked(netip.AddrPortFrom(ip, 6881))
}

// ListenAddr returns a Conn at addr, or an error if it is taken.
func (n *Network) ListenAddr(addr netip.AddrPort) (*Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conns[addr] != nil {
		return nil, fmt.Errorf("memnet: %s is in use", addr)
	}
	return n.listenLocked(addr), nil
}

func (n *Network) listenLocked(addr netip.AddrPort) *Conn {
	c := &Conn{net: n, addr: addr, q: make(chan packet, QueueLen), closed: make(chan struct{})}
	n.conns[addr] = c
	return c
}

type packet struct {
	b    []byte
	from netip.AddrPort
}

// Conn is one endpoint; it implements net.PacketConn.
type Conn struct {
	net    *Network
	addr   netip.AddrPort
	q      chan packet
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	deadline time.Time
}

var _ net.PacketConn = (*Conn)(nil)

// ReadFrom waits for the next datagram. A datagram longer than p is
// truncated, as with UDP.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case <-c.closed:
		return 0, nil, net.ErrClosed
	default:
	}
	c.mu.Lock()
	dl := c.deadline
	c.mu.Unlock()
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return 0, nil, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case pk := <-c.q:
		return copy(p, pk.b), net.UDPAddrFromAddrPort(pk.from), nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo delivers a copy of p to the Conn at addr, or drops it.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("memnet: address %v is not a *net.UDPAddr", addr)
	}
	to := ua.AddrPort()
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	c.net.mu.Lock()
	dst := c.net.conns[to]
	c.net.mu.Unlock()
	c.net.Sent.Add(1)
	if dst == nil {
		c.net.Dropped.Add(1)
		return len(p), nil
	}
	select {
	case dst.q <- packet{b: append([]byte(nil), p...), from: c.addr}:
	default:
		c.net.Dropped.Add(1)
	}
	return len(p), nil
}

// Close removes the Conn from the network; pending reads return
// net.ErrClosed.
func (c *Conn) Close() error {
	err := errors.New("memnet: already closed")
	c.once.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		if c.net.conns[c.addr] == c {
			delete(c.net.conns, c.addr)
		}
		c.net.mu.Unlock()
		err = nil
	})
	return err
}

// LocalAddr returns the Conn's address.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.addr) }

// AddrPort returns the Conn's address.
func (c *Conn) AddrPort() netip.AddrPort { return c.addr }

// SetDeadline sets the read deadline; writes never block.
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline makes reads fail after t (checked when a read starts).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline is a no-op: writes never block.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
