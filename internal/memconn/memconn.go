// Package memconn is an in-memory stream network for tests and
// simulations of peers: connections behave as TCP connections do (each
// direction is a bounded byte buffer, so a writer blocks when the reader
// falls behind; deadlines; a close is seen as end of stream by the other
// side, after the data already sent), but no socket is involved.
//
// Everything blocks on channels and timers, so code using it runs inside
// a testing/synctest bubble, where time is virtual and a swarm of peers
// runs as fast as the CPU allows and the same way whatever the machine's
// load. net.Pipe is no substitute: it has no buffer, so each write waits
// for a read, which deadlocks peers that write before they read (both
// sides of a BitTorrent handshake do).
package memconn

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// DefaultBuffer is the bytes each direction of a connection holds when
// Network.Buffer is zero, about a loopback TCP socket's.
const DefaultBuffer = 256 << 10

// backlog is how many dialled connections a listener holds before Accept;
// more are refused, as a full accept queue makes a TCP dial fail.
const backlog = 128

// Network connects the listeners and connections made through it. The
// zero value is ready to use; set the fields before the first Dial.
type Network struct {
	// Latency delays each byte written by this long before the other
	// side can read it (one way); zero delivers at once.
	Latency time.Duration
	// Buffer is the bytes in flight per direction before a write
	// blocks; zero means DefaultBuffer.
	Buffer int

	mu        sync.Mutex
	listeners map[netip.AddrPort]*Listener
	nextPort  map[netip.Addr]uint16 // ephemeral ports handed out per address
	live      map[*Conn]struct{}    // connections not closed, for Vanish
	gone      map[netip.Addr]bool   // hosts that vanished
}

// Listen returns a listener at addr, which must be free.
func (n *Network) Listen(addr netip.AddrPort) (*Listener, error) {
	addr = unmap(addr)
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("memconn: listen on %v: need an address and a port", addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listeners == nil {
		n.listeners = make(map[netip.AddrPort]*Listener)
	}
	if n.listeners[addr] != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: syscall.EADDRINUSE}
	}
	l := &Listener{net: n, addr: addr, changed: make(chan struct{})}
	n.listeners[addr] = l
	return l, nil
}

// Dial connects from an ephemeral port of the address from to the
// listener at to. It never blocks: a missing listener or a full accept
// queue refuses the connection at once.
func (n *Network) Dial(ctx context.Context, from netip.Addr, to netip.AddrPort) (net.Conn, error) {
	to = unmap(to)
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(to), Err: syscall.ECONNREFUSED}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(to), Err: err}
	}
	n.mu.Lock()
	l := n.listeners[to]
	local := n.ephemeral(from.Unmap())
	gone := n.gone[from.Unmap()] || n.gone[to.Addr()]
	n.mu.Unlock()
	if gone {
		// Nothing answers: the dial waits for its context, as a TCP
		// dial to a host that is down waits for its timeout.
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(to), Err: ctx.Err()}
	}
	if l == nil {
		return nil, refused
	}
	client, server := n.pair(local, to)
	if !l.enqueue(server) {
		client.Close()
		server.Close()
		return nil, refused
	}
	return client, nil
}

// Vanish takes host off the network without a word, as a crash or a
// pulled cable does: its connections, in both directions, deliver nothing
// more (not even a close), so writes fill the buffers and then wait, and
// reads wait, until a deadline or a Close; dials to or from it wait until
// their context ends. It cannot be undone.
func (n *Network) Vanish(host netip.Addr) {
	host = host.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gone == nil {
		n.gone = make(map[netip.Addr]bool)
	}
	n.gone[host] = true
	for c := range n.live {
		if c.local.Addr() == host || c.remote.Addr() == host {
			c.rx.cutOff()
			c.tx.cutOff()
		}
	}
}

// Dialer returns Dial from the address from, in the form of a dial hook.
func (n *Network) Dialer(from netip.Addr) func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	return func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
		return n.Dial(ctx, from, to)
	}
}

// ephemeral picks the next source port of addr; n.mu is held.
func (n *Network) ephemeral(addr netip.Addr) netip.AddrPort {
	if n.nextPort == nil {
		n.nextPort = make(map[netip.Addr]uint16)
	}
	p := n.nextPort[addr]
	if p < 32768 {
		p = 32768
	}
	n.nextPort[addr] = p + 1
	if p == 65535 {
		n.nextPort[addr] = 32768
	}
	return netip.AddrPortFrom(addr, p)
}

// Pipe returns the two ends of one connection between the addresses a
// and b, outside any listener.
func (n *Network) Pipe(a, b netip.AddrPort) (net.Conn, net.Conn) {
	ca, cb := n.pair(unmap(a), unmap(b))
	return ca, cb
}

func (n *Network) pair(a, b netip.AddrPort) (*Conn, *Conn) {
	size := n.Buffer
	if size <= 0 {
		size = DefaultBuffer
	}
	ab, ba := newPipe(size), newPipe(size)
	ca := &Conn{net: n, local: a, remote: b, rx: ba, tx: ab, latency: n.Latency, done: make(chan struct{})}
	cb := &Conn{net: n, local: b, remote: a, rx: ab, tx: ba, latency: n.Latency, done: make(chan struct{})}
	ca.rdl.init()
	ca.wdl.init()
	cb.rdl.init()
	cb.wdl.init()
	n.mu.Lock()
	if n.live == nil {
		n.live = make(map[*Conn]struct{})
	}
	n.live[ca] = struct{}{}
	n.live[cb] = struct{}{}
	n.mu.Unlock()
	return ca, cb
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Listener accepts connections dialled to its address; it implements
// net.Listener.
type Listener struct {
	net  *Network
	addr netip.AddrPort

	mu      sync.Mutex
	queue   []*Conn
	closed  bool
	changed chan struct{} // closed and replaced when queue or closed change
}

var _ net.Listener = (*Listener)(nil)

func (l *Listener) enqueue(c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.queue) >= backlog {
		return false
	}
	l.queue = append(l.queue, c)
	close(l.changed)
	l.changed = make(chan struct{})
	return true
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.mu.Unlock()
			return c, nil
		}
		ch := l.changed
		l.mu.Unlock()
		<-ch
	}
}

// Close stops listening; pending Accepts return net.ErrClosed and
// connections not yet accepted are closed.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.closed = true
	pending := l.queue
	l.queue = nil
	close(l.changed)
	l.mu.Unlock()
	for _, c := range pending {
		c.Close()
	}
	l.net.mu.Lock()
	if l.net.listeners[l.addr] == l {
		delete(l.net.listeners, l.addr)
	}
	l.net.mu.Unlock()
	return nil
}

// Addr is the listening address, a *net.TCPAddr.
func (l *Listener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr) }

// AddrPort is the listening address.
func (l *Listener) AddrPort() netip.AddrPort { return l.addr }

// pipe is one direction of a connection: a ring buffer that grows up to
// limit as needed, so a quiet connection holds little memory, and the
// times at which its bytes arrive.
type pipe struct {
	mu      sync.Mutex
	buf     []byte // ring; the unread bytes start at head
	head    int
	size    int    // unread bytes
	limit   int    // most unread bytes; a writer waits beyond
	written uint64 // bytes ever written
	marks   []mark // with latency: when the unread bytes arrive, oldest first
	eof     bool   // the writing end closed: reads end after the data
	reset   bool   // the reading end closed: writes fail
	cut     bool   // an end vanished: nothing is delivered any more
	// changed is closed and replaced on a change above, if waited for.
	changed chan struct{}
	waited  bool
}

// mark says that the bytes written before end arrive at at.
type mark struct {
	end uint64
	at  time.Time
}

func newPipe(limit int) *pipe {
	return &pipe{limit: limit, changed: make(chan struct{})}
}

func (p *pipe) cutOff() {
	p.mu.Lock()
	p.cut = true
	p.signal()
	p.mu.Unlock()
}

// signal wakes everyone waiting on p; p.mu is held.
func (p *pipe) signal() {
	if p.waited {
		close(p.changed)
		p.changed = make(chan struct{})
		p.waited = false
	}
}

// wait returns the channel that signal closes; p.mu is held.
func (p *pipe) wait() <-chan struct{} {
	p.waited = true
	return p.changed
}

// put appends b, which fits under limit, arriving at at; p.mu is held.
func (p *pipe) put(b []byte, at time.Time) {
	if p.size+len(b) > len(p.buf) {
		grown := make([]byte, min(p.limit, max(2*len(p.buf), p.size+len(b), 4096)))
		k := copy(grown, p.buf[p.head:min(p.head+p.size, len(p.buf))])
		copy(grown[k:], p.buf[:p.size-k])
		p.buf, p.head = grown, 0
	}
	tail := (p.head + p.size) % len(p.buf)
	k := copy(p.buf[tail:], b)
	copy(p.buf, b[k:])
	p.size += len(b)
	p.written += uint64(len(b))
	if at.IsZero() {
		return
	}
	if n := len(p.marks); n > 0 && p.marks[n-1].at.Equal(at) {
		p.marks[n-1].end = p.written
	} else {
		p.marks = append(p.marks, mark{end: p.written, at: at})
	}
}

// arrived is how many unread bytes have arrived by now, and when more
// arrive if some are still on their way; p.mu is held.
func (p *pipe) arrived(now time.Time) (int, time.Time) {
	read := p.written - uint64(p.size)
	for len(p.marks) > 0 && p.marks[0].end <= read {
		p.marks = p.marks[1:]
	}
	if len(p.marks) == 0 {
		return p.size, time.Time{}
	}
	end := read
	for _, m := range p.marks {
		if m.at.After(now) {
			return int(end - read), m.at
		}
		end = m.end
	}
	return p.size, time.Time{}
}

// take moves up to len(b) of the first n unread bytes into b; p.mu is held.
func (p *pipe) take(b []byte, n int) int {
	n = min(n, len(b))
	k := copy(b[:n], p.buf[p.head:])
	copy(b[k:n], p.buf)
	p.head = (p.head + n) % len(p.buf)
	p.size -= n
	if p.size == 0 {
		p.head = 0
	}
	return n
}

// drop forgets the unread bytes; p.mu is held.
func (p *pipe) drop() {
	p.buf, p.head, p.size, p.marks = nil, 0, 0, nil
}

// Conn is one end of a connection; it implements net.Conn. Its addresses
// are *net.TCPAddr, so code that parses them works unchanged.
type Conn struct {
	net           *Network
	local, remote netip.AddrPort
	rx, tx        *pipe
	latency       time.Duration
	rdl, wdl      deadline

	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

var _ net.Conn = (*Conn)(nil)

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read reads what the other side wrote, waiting for it if there is none
// yet; io.EOF once the other side closed and everything it sent was read.
func (c *Conn) Read(b []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	p := c.rx
	for {
		select {
		case <-c.done:
			return 0, c.opError("read", net.ErrClosed)
		default:
		}
		if c.rdl.expired() {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			return 0, nil
		}
		p.mu.Lock()
		var wait <-chan time.Time
		switch {
		case p.cut:
			// Nothing comes any more; wait for a deadline or a Close.
		case p.size > 0:
			n, next := p.arrived(time.Now())
			if n > 0 {
				n = p.take(b, n)
				p.signal()
				p.mu.Unlock()
				return n, nil
			}
			// The oldest bytes are still on their way.
			d := time.Until(next)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			wait = timer.C
		case p.eof:
			p.mu.Unlock()
			return 0, io.EOF
		}
		ch := p.wait()
		p.mu.Unlock()
		select {
		case <-ch:
		case <-wait:
		case <-c.done:
		case <-c.rdl.wait():
		}
	}
}

// Write queues b for the other side, waiting while the direction's
// buffer is full. It fails once the other side has closed.
func (c *Conn) Write(b []byte) (int, error) {
	p := c.tx
	written := 0
	for {
		select {
		case <-c.done:
			return written, c.opError("write", net.ErrClosed)
		default:
		}
		if c.wdl.expired() {
			return written, c.opError("write", os.ErrDeadlineExceeded)
		}
		p.mu.Lock()
		if p.reset && !p.cut {
			p.mu.Unlock()
			return written, c.opError("write", syscall.ECONNRESET)
		}
		if written == len(b) {
			p.mu.Unlock()
			return written, nil
		}
		if room := p.limit - p.size; room > 0 {
			k := min(room, len(b)-written)
			at := time.Time{}
			if c.latency > 0 {
				at = time.Now().Add(c.latency)
			}
			p.put(b[written:written+k], at)
			written += k
			p.signal()
			p.mu.Unlock()
			continue
		}
		ch := p.wait()
		p.mu.Unlock()
		select {
		case <-ch:
		case <-c.done:
		case <-c.wdl.wait():
		}
	}
}

// Close closes this end: the other side reads what was sent, then
// io.EOF, and its writes fail; data sent to this end and not read is
// dropped.
func (c *Conn) Close() error {
	err := c.opError("close", net.ErrClosed)
	c.closeOnce.Do(func() {
		close(c.done)
		c.tx.mu.Lock()
		c.tx.eof = true
		c.tx.signal()
		c.tx.mu.Unlock()
		c.rx.mu.Lock()
		c.rx.reset = true
		if !c.rx.cut {
			// Dropped unread; after a vanish they stay, holding the
			// sender's buffer full as unacknowledged data would.
			c.rx.drop()
		}
		c.rx.signal()
		c.rx.mu.Unlock()
		c.rdl.set(time.Time{})
		c.wdl.set(time.Time{})
		c.net.mu.Lock()
		delete(c.net.live, c)
		c.net.mu.Unlock()
		err = nil
	})
	return err
}

// LocalAddr returns this end's address, a *net.TCPAddr.
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.local) }

// RemoteAddr returns the other end's address, a *net.TCPAddr.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline makes reads, waiting or future, fail at t; zero means
// never.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

// SetWriteDeadline makes writes, waiting or future, fail at t; zero means
// never.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.set(t)
	return nil
}

// deadline is a point in time after which operations fail; its channel
// closes then, waking operations that wait.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	gen   uint64        // counts set calls, so a stale timer does nothing
	ch    chan struct{} // closed when the deadline passes
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !t.IsZero() {
		// Moving a pending deadline (code that sets one before each
		// read does it all the time): the same timer will do.
		if dur := time.Until(t); dur > 0 && d.timer.Reset(dur) {
			return
		}
	}
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch:
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	// A timer stopped too late (its function already waiting for d.mu)
	// finds the generation moved on.
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			close(d.ch)
		}
	})
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) expired() bool {
	select {
	case <-d.wait():
		return true
	default:
		return false
	}
}
