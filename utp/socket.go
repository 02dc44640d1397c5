package utp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is what a Socket sends through: the owner's UDP socket (a
// *net.UDPConn satisfies it). A Transport that also has
// WriteToUDPAddrPort is used through that, which does not allocate.
type Transport interface {
	WriteTo(p []byte, addr net.Addr) (int, error)
	LocalAddr() net.Addr
}

type addrPortWriter interface {
	WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error)
}

// Config tunes a Socket. The zero value is usable.
type Config struct {
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// RecvBuffer is each connection's receive buffer in bytes, the most it
	// advertises to its peer (default 2 MiB).
	RecvBuffer int
	// SendBuffer is how many written bytes a connection holds before Write
	// blocks (default 2 MiB).
	SendBuffer int
	// MaxPacketSize caps the datagrams sent and says how large a datagram
	// this side reads; 0 means the link's: the loopback interface's MTU
	// for loopback peers, Ethernet's elsewhere.
	MaxPacketSize int
	// TargetDelay is LEDBAT's target queuing delay (default 100 ms).
	TargetDelay time.Duration
	// AcceptBacklog is how many incoming connections wait for Accept
	// (default 128); SYNs beyond it are dropped.
	AcceptBacklog int
	// MaxHalfOpen caps incoming connections whose peer has not yet
	// acknowledged our SYN answer (default 64); SYNs beyond it are dropped.
	MaxHalfOpen int
	// MaxConns caps connections in all (default 4096).
	MaxConns int
	// KeepAlive is how long an idle connection waits before sending an
	// empty ack to keep NAT mappings (default 29 s).
	KeepAlive time.Duration
	// IdleTimeout is how long a connection waits for any packet from its
	// peer before failing (default 5 min, more than the 2 minutes between
	// peer-wire keep-alives, since not every implementation answers uTP
	// keep-alives; half-open connections: 10 s).
	IdleTimeout time.Duration
	// MaxTimeouts is how many consecutive retransmission time-outs a
	// connection survives (default 7, about 2 minutes of silence).
	MaxTimeouts int
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.RecvBuffer, 2<<20)
	def(&c.SendBuffer, 2<<20)
	def(&c.AcceptBacklog, 128)
	def(&c.MaxHalfOpen, 64)
	def(&c.MaxConns, 4096)
	def(&c.MaxTimeouts, 7)
	c.RecvBuffer = max(c.RecvBuffer, 64<<10)
	c.SendBuffer = max(c.SendBuffer, 64<<10)
	if c.TargetDelay <= 0 {
		c.TargetDelay = 100 * time.Millisecond
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 29 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.MaxPacketSize > 0 {
		c.MaxPacketSize = min(max(c.MaxPacketSize, minPacketSize), maxDatagram)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Errors a connection fails with.
var (
	ErrReset   = errors.New("utp: connection reset by peer")
	ErrTimeout = timeoutError{}
	// ErrRefused: the peer answered a SYN with a RESET.
	ErrRefused = errors.New("utp: connection refused")
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "utp: peer stopped answering" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// connKey names a connection: the peer and our receive ID.
type connKey struct {
	addr netip.AddrPort
	id   uint16
}

// Socket multiplexes the uTP connections of one UDP socket; see the
// package comment. It is a net.Listener for incoming connections.
type Socket struct {
	tr    Transport
	fast  addrPortWriter
	cfg   Config
	log   *slog.Logger
	epoch time.Time
	pool  bufPool
	// isn picks initial sequence numbers; tests replace it to force wraps.
	isn func() uint16
	// loMTU is the loopback interface's MTU (0 if unknown).
	loMTU int

	mu       sync.RWMutex
	conns    map[connKey]*Conn
	halfOpen int
	closed   bool

	accept chan *Conn
	done   chan struct{}
	// onClose closes a UDP socket the Socket owns (Listen).
	onClose func()

	// deferAcks is set while a batched reader runs: it calls flushAcks
	// when the socket is drained, so pending acks need not wait for
	// delayedAck.
	deferAcks atomic.Bool
	ackMu     sync.Mutex
	acks      []*Conn // connections with an ack pending, for flushAcks

	// Counters for tests and reports.
	resetsSent, synDropped, unknownPackets atomic.Uint64
}

// NewSocket returns a Socket that sends through tr. Its owner hands it
// incoming uTP datagrams through HandlePacket (or runs Serve).
func NewSocket(tr Transport, cfg Config) *Socket {
	cfg = cfg.withDefaults()
	s := &Socket{
		tr:     tr,
		cfg:    cfg,
		log:    cfg.Logger,
		epoch:  time.Now(),
		conns:  make(map[connKey]*Conn),
		accept: make(chan *Conn, cfg.AcceptBacklog),
		done:   make(chan struct{}),
		isn:    func() uint16 { return uint16(rand.Uint32()) },
		loMTU:  loopbackMTU(),
	}
	s.fast, _ = tr.(addrPortWriter)
	return s
}

// loopbackMTU is the MTU of the first loopback interface, 0 if none.
func loopbackMTU() int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 && i.Flags&net.FlagUp != 0 {
			return i.MTU
		}
	}
	return 0
}

// micros is the Socket's clock for timestamps.
func (s *Socket) micros(now time.Time) uint32 {
	return uint32(now.Sub(s.epoch).Microseconds())
}

// send writes one datagram.
func (s *Socket) send(b []byte, to netip.AddrPort) error {
	var err error
	if s.fast != nil {
		_, err = s.fast.WriteToUDPAddrPort(b, to)
	} else {
		_, err = s.tr.WriteTo(b, net.UDPAddrFromAddrPort(to))
	}
	return err
}

// HandlePacket takes one datagram from the owner's socket. It reports
// whether the datagram was uTP; if not, the owner passes it on (to the
// DHT). b is not kept after HandlePacket returns.
func (s *Socket) HandlePacket(b []byte, from netip.AddrPort) bool {
	if !IsPacket(b) {
		return false
	}
	p, err := parsePacket(b)
	if err != nil {
		s.log.Debug("utp: bad packet", "from", from, "err", err)
		return true
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	now := time.Now()
	s.mu.RLock()
	c := s.conns[connKey{from, p.connID}]
	if c == nil && p.typ == stReset {
		// A RESET may name either of the connection's IDs.
		for _, id := range []uint16{p.connID + 1, p.connID - 1} {
			if cc := s.conns[connKey{from, id}]; cc != nil && cc.sendID == p.connID {
				c = cc
			}
		}
	}
	s.mu.RUnlock()
	if c != nil {
		c.receive(&p, now)
		return true
	}
	switch p.typ {
	case stSyn:
		s.incomingSyn(&p, from, now)
	case stReset:
	default:
		s.unknownPackets.Add(1)
		s.sendReset(p.connID, p.seq, from)
	}
	return true
}

// sendReset answers a packet of an unknown connection: one RESET of
// headerLen bytes, never more than the packet that caused it.
func (s *Socket) sendReset(id, ackNr uint16, to netip.AddrPort) {
	var b [headerLen]byte
	putHeader(b[:], &header{typ: stReset, connID: id, ts: s.micros(time.Now()), seq: uint16(rand.Uint32()), ack: ackNr})
	s.resetsSent.Add(1)
	_ = s.send(b[:], to)
}

// incomingSyn opens a connection for a SYN, or answers a repeated one.
func (s *Socket) incomingSyn(p *packet, from netip.AddrPort, now time.Time) {
	key := connKey{from, p.connID + 1}
	s.mu.Lock()
	if c := s.conns[key]; c != nil {
		s.mu.Unlock()
		c.receive(p, now)
		return
	}
	if s.closed || s.halfOpen >= s.cfg.MaxHalfOpen || len(s.conns) >= s.cfg.MaxConns || len(s.accept) == cap(s.accept) {
		s.mu.Unlock()
		s.synDropped.Add(1)
		return
	}
	c := newConn(s, from, p.connID+1, p.connID)
	c.initAccepted(p, now)
	s.conns[key] = c
	s.halfOpen++
	s.accept <- c // cannot block: checked above under mu, and only we send
	s.mu.Unlock()
	c.mu.Lock()
	c.sendState(now)
	c.armTimer(now)
	c.mu.Unlock()
}

// pendingAck notes that c holds back an ack (called under c.mu).
func (s *Socket) pendingAck(c *Conn) {
	if !s.deferAcks.Load() {
		return
	}
	s.ackMu.Lock()
	s.acks = append(s.acks, c)
	s.ackMu.Unlock()
}

// flushAcks sends the acks held back while a batch was read.
func (s *Socket) flushAcks() {
	s.ackMu.Lock()
	acks := s.acks
	s.acks = nil
	s.ackMu.Unlock()
	if len(acks) == 0 {
		return
	}
	now := time.Now()
	for _, c := range acks {
		c.mu.Lock()
		if c.ackPending > 0 && c.state != stateDead {
			c.sendState(now)
		}
		c.mu.Unlock()
	}
	s.ackMu.Lock()
	if s.acks == nil {
		s.acks = acks[:0] // reuse the slice
	}
	s.ackMu.Unlock()
}

// established moves an incoming connection out of the half-open count.
func (s *Socket) established() {
	s.mu.Lock()
	s.halfOpen--
	s.mu.Unlock()
}

// remove forgets a finished connection.
func (s *Socket) remove(c *Conn, wasHalfOpen bool) {
	s.mu.Lock()
	if s.conns[connKey{c.remote, c.recvID}] == c {
		delete(s.conns, connKey{c.remote, c.recvID})
		if wasHalfOpen {
			s.halfOpen--
		}
	}
	s.mu.Unlock()
}

// Dial opens a connection to addr ("host:port", a numeric address).
func (s *Socket) Dial(ctx context.Context, addr string) (*Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		ua, err2 := net.ResolveUDPAddr("udp", addr)
		if err2 != nil {
			return nil, fmt.Errorf("utp: dial %s: %w", addr, err)
		}
		ap = ua.AddrPort()
	}
	return s.DialAddrPort(ctx, ap)
}

// DialAddrPort opens a connection to addr. It returns once the peer
// answered the SYN; ctx bounds the wait.
func (s *Socket) DialAddrPort(ctx context.Context, addr netip.AddrPort) (*Conn, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, net.ErrClosed
	}
	if len(s.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		return nil, fmt.Errorf("utp: dial %s: %d connections open", addr, len(s.conns))
	}
	var id uint16
	for {
		id = uint16(rand.Uint32())
		if s.conns[connKey{addr, id}] == nil {
			break
		}
	}
	c := newConn(s, addr, id, id+1)
	s.conns[connKey{addr, id}] = c
	s.mu.Unlock()

	c.mu.Lock()
	c.startDial(now)
	c.mu.Unlock()
	select {
	case <-c.established:
		return c, nil
	case <-c.dead:
		return nil, fmt.Errorf("utp: dial %s: %w", addr, c.terminalErr())
	case <-ctx.Done():
		c.abort(ctx.Err(), false)
		return nil, fmt.Errorf("utp: dial %s: %w", addr, ctx.Err())
	}
}

// AcceptUTP waits for an incoming connection. Connections that died
// while they waited (half-open ones whose peer never spoke again) are
// skipped.
func (s *Socket) AcceptUTP() (*Conn, error) {
	for {
		select {
		case c := <-s.accept:
			select {
			case <-c.dead:
				continue
			default:
				return c, nil
			}
		case <-s.done:
			return nil, net.ErrClosed
		}
	}
}

// Accept waits for an incoming connection (net.Listener).
func (s *Socket) Accept() (net.Conn, error) {
	c, err := s.AcceptUTP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Addr is the local address of the owner's socket.
func (s *Socket) Addr() net.Addr { return s.tr.LocalAddr() }

// Close resets every connection and stops accepting. It does not close
// the owner's socket.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.abort(net.ErrClosed, true)
	}
	if s.onClose != nil {
		s.onClose()
	}
	return nil
}

// NumConns is how many connections the Socket holds.
func (s *Socket) NumConns() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}
