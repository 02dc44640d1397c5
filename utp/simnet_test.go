package utp

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// simNet is an in-memory datagram network for tests under testing/synctest:
// each datagram is lost, duplicated, delayed (with jitter, which reorders)
// and queued behind a rate-limited bottleneck as its link says, with time.
// AfterFunc timers, so fake time drives it.
type simNet struct {
	mu    sync.Mutex
	rng   *rand.Rand
	ends  map[netip.AddrPort]*simEnd
	next  byte
	wg    sync.WaitGroup
	stats simStats
	// measureFrom starts recording queuing delays (zero: never).
	measureFrom time.Time
}

type simStats struct {
	sent, lost, dup, overQueue, tooBig, fragmented int
	maxQueue                                       time.Duration   // the longest bottleneck queuing delay seen
	queues                                         []time.Duration // bottleneck queuing delays since measureFrom
}

// simLink shapes the datagrams one end sends.
type simLink struct {
	Loss, Dup     float64       // probabilities
	Delay, Jitter time.Duration // one-way delay, plus uniform [0, Jitter)
	Rate          int           // bottleneck bytes per second; 0: none
	QueueLimit    time.Duration // a datagram that would wait longer at the bottleneck is dropped
	MTU           int           // larger probes are dropped, other datagrams fragmented; 0: no limit
	// Drop, if set, drops the datagrams it returns true for.
	Drop func(p packet) bool
}

type simEnd struct {
	net       *simNet
	addr      netip.AddrPort
	sock      *Socket
	link      simLink
	busyUntil time.Time
	lastAt    map[netip.AddrPort]time.Time // the last arrival scheduled at each peer
	in        chan simDatagram
	done      chan struct{}
	gone      bool // vanished: nothing is delivered to or from it
}

type simDatagram struct {
	b    []byte
	from netip.AddrPort
}

func newSimNet(seed uint64) *simNet {
	return &simNet{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), ends: make(map[netip.AddrPort]*simEnd)}
}

// add makes an endpoint with a Socket on it.
func (n *simNet) add(t testing.TB, link simLink, cfg Config) *simEnd {
	n.mu.Lock()
	n.next++
	e := &simEnd{net: n, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, n.next}), 6881), link: link,
		in: make(chan simDatagram, 4096), done: make(chan struct{}), lastAt: make(map[netip.AddrPort]time.Time)}
	n.ends[e.addr] = e
	n.mu.Unlock()
	e.sock = NewSocket(e, cfg)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case d := <-e.in:
				e.sock.HandlePacket(d.b, d.from)
			case <-e.done:
				return
			}
		}
	}()
	t.Cleanup(func() { e.close() })
	return e
}

func (e *simEnd) close() {
	e.sock.Close()
	e.net.mu.Lock()
	select {
	case <-e.done:
	default:
		close(e.done)
	}
	e.net.mu.Unlock()
}

// vanish makes the endpoint silently disappear, as a peer whose machine
// went away: its Socket stays but nothing reaches it or leaves it.
func (e *simEnd) vanish() {
	e.net.mu.Lock()
	e.gone = true
	e.net.mu.Unlock()
}

func (e *simEnd) setLink(l simLink) {
	e.net.mu.Lock()
	e.link = l
	e.net.mu.Unlock()
}

func (e *simEnd) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(e.addr) }

func (e *simEnd) WriteTo(b []byte, addr net.Addr) (int, error) {
	return e.WriteToUDPAddrPort(b, addr.(*net.UDPAddr).AddrPort())
}

func (e *simEnd) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	n := e.net
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stats.sent++
	dst := n.ends[to]
	l := e.link
	if dst == nil || e.gone || dst.gone {
		return len(b), nil
	}
	frags := 1
	if l.MTU > 0 && len(b) > l.MTU {
		// Probes are sent as if with "don't fragment" and vanish; other
		// datagrams are fragmented, and lost if any fragment is.
		if p, err := parsePacket(b); err != nil || p.ext == extPad {
			n.stats.tooBig++
			return len(b), nil
		}
		frags = (len(b) + l.MTU - 1) / l.MTU
		n.stats.fragmented++
	}
	if l.Drop != nil {
		if p, err := parsePacket(b); err == nil && l.Drop(p) {
			n.stats.lost++
			return len(b), nil
		}
	}
	for range frags {
		if n.rng.Float64() < l.Loss {
			n.stats.lost++
			return len(b), nil
		}
	}
	now := time.Now()
	depart := now
	if l.Rate > 0 {
		start := now
		if e.busyUntil.After(start) {
			start = e.busyUntil
		}
		q := start.Sub(now)
		if l.QueueLimit > 0 && q > l.QueueLimit {
			n.stats.overQueue++
			return len(b), nil
		}
		n.stats.maxQueue = max(n.stats.maxQueue, q)
		if !n.measureFrom.IsZero() && !now.Before(n.measureFrom) {
			n.stats.queues = append(n.stats.queues, q)
		}
		depart = start.Add(time.Duration(len(b)) * time.Second / time.Duration(l.Rate))
		e.busyUntil = depart
	}
	copies := 1
	if n.rng.Float64() < l.Dup {
		copies = 2
		n.stats.dup++
	}
	for range copies {
		d := depart.Sub(now) + l.Delay
		if l.Jitter > 0 {
			d += time.Duration(n.rng.Int64N(int64(l.Jitter)))
		}
		if l.Jitter == 0 {
			// Timers due at the same instant fire in any order: keep a
			// link without jitter in order.
			if at := now.Add(d); !at.After(e.lastAt[to]) {
				d = e.lastAt[to].Sub(now) + time.Nanosecond
			}
			e.lastAt[to] = now.Add(d)
		}
		dg := simDatagram{b: append([]byte(nil), b...), from: e.addr}
		time.AfterFunc(d, func() {
			select {
			case dst.in <- dg:
			case <-dst.done:
			default: // the receiver's queue is full: dropped, as UDP
			}
		})
	}
	return len(b), nil
}

// snapshot returns the counters so far.
func (n *simNet) snapshot() simStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.queues = append([]time.Duration(nil), s.queues...)
	return s
}

func (n *simNet) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	return fmt.Sprintf("sent %d lost %d dup %d over-queue %d too-big %d max-queue %v", s.sent, s.lost, s.dup, s.overQueue, s.tooBig, s.maxQueue)
}

// discard is a Transport that sends nothing.
type discard struct{}

func (discard) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }
func (discard) LocalAddr() net.Addr                       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
