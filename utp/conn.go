package utp

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

type connState uint8

const (
	stateSynSent   connState = iota // we dialled, no answer yet
	stateSynRecv                    // we answered a SYN, the peer has not spoken since
	stateConnected                  // both sides heard each other
	stateDead                       // finished or failed
)

// Datagram sizes.
const (
	maxDatagram   = 65507 // the largest UDP payload over IPv4
	safeDatagram  = 1232  // IPv6's minimum MTU less IPv6 and UDP headers: every path carries it
	minPacketSize = 576 - 28
	// probeStep: probing stops once floor and ceiling are this close.
	probeStep = 64
	// maxReorder bounds how far ahead of the next expected packet an out
	// of order packet may be (half the sequence space, less margin).
	maxReorder = 16384
	// maxSackBytes bounds a selective ack's bitmask.
	maxSackBytes = 128
	minRTO       = 500 * time.Millisecond
	maxRTO       = 60 * time.Second
	linger       = 10 * time.Second
	halfOpenIdle = 10 * time.Second
	// delayedAck bounds how long the ack of a lone data packet waits for
	// a second one to share it.
	delayedAck = time.Millisecond
)

// outPacket is a packet sent and not yet acknowledged.
type outPacket struct {
	buf        []byte // headerLen bytes of room, then the payload
	typ        uint8
	seq        uint16
	sentAt     time.Time
	transmits  int
	sacked     bool
	resend     bool // marked lost: send again
	fastResent bool // already resent for duplicate or selective acks
	probe      int  // the padded datagram size when sent as an MTU probe
}

func (o *outPacket) payload() int { return len(o.buf) - headerLen }

// Conn is one uTP connection; it implements net.Conn. Its methods are
// safe for concurrent use.
type Conn struct {
	s      *Socket
	remote netip.AddrPort
	recvID uint16
	sendID uint16

	established chan struct{} // closed once the peer answered
	dead        chan struct{} // closed when the connection is gone
	readable    chan struct{} // signalled when Read may proceed
	writable    chan struct{} // signalled when Write may proceed

	mu    sync.Mutex
	state connState
	err   error // why the connection is dead
	timer *time.Timer
	// timerAt is when the timer fires; zero if it is stopped.
	timerAt time.Time

	// Sending.
	seqNr      uint16 // the next sequence number to use
	sndUna     uint16 // the sequence number of inflight[head]
	inflight   []*outPacket
	head       int
	curWindow  int // payload bytes in flight, not selectively acked
	sendBuf    ring
	finQueued  bool
	finSent    bool
	finAcked   bool
	peerWnd    uint32
	cc         ledbat
	dupAcks    int
	lossSeq    uint16 // losses of packets sent before this do not cut the window again
	rtt        time.Duration
	rttVar     time.Duration
	rto        time.Duration
	rtoStart   time.Time // when the retransmission clock last restarted
	timeouts   int
	lastSend   time.Time
	stallSince time.Time // when data started waiting for the peer's window with nothing in flight

	// Receiving.
	ackNr      uint16 // the last sequence number received in order
	recvBuf    ring
	ooo        map[uint16][]byte // out of order packets' payloads
	oooBytes   int
	oooMax     uint16 // the furthest out of order distance held
	gotFin     bool
	eofSeq     uint16
	eof        bool // everything up to the FIN was delivered
	replyMicro uint32
	ackPending int       // data packets received and not yet acked
	ackDue     time.Time // when the pending ack goes out at the latest
	lastRecv   time.Time
	advWnd     int // the window last advertised
	userClosed bool
	lingerEnd  time.Time

	// Packet sizes.
	peerMax   int // the largest datagram the peer reads (0: it did not say)
	mtuFloor  int // datagrams of this size get through: data packets use it
	mtuCeil   int // datagrams larger than this do not
	probeSeq  uint16
	probing   bool
	halfOpen  bool // counted in the Socket's half-open connections
	scratch   []byte
	readDL    time.Time
	writeDL   time.Time
	closeOnce sync.Once
}

func newConn(s *Socket, remote netip.AddrPort, recvID, sendID uint16) *Conn {
	c := &Conn{
		s:           s,
		remote:      remote,
		recvID:      recvID,
		sendID:      sendID,
		established: make(chan struct{}),
		dead:        make(chan struct{}),
		readable:    make(chan struct{}, 1),
		writable:    make(chan struct{}, 1),
		rto:         time.Second,
		peerWnd:     64 << 10,
	}
	c.sendBuf.max = s.cfg.SendBuffer
	c.recvBuf.max = s.cfg.RecvBuffer
	c.mtuCeil = c.linkCeil()
	c.mtuFloor = min(safeDatagram, c.mtuCeil)
	c.cc = newLedbat(s.cfg.TargetDelay, c.mss())
	return c
}

// linkCeil is the largest datagram the link to the peer carries, as far
// as this side knows.
func (c *Conn) linkCeil() int {
	if c.s.cfg.MaxPacketSize > 0 {
		return c.s.cfg.MaxPacketSize
	}
	hdr := 28
	if c.remote.Addr().Is6() {
		hdr = 48
	}
	mtu := 1500
	if c.remote.Addr().IsLoopback() && c.s.loMTU > 0 {
		mtu = c.s.loMTU
	}
	return min(mtu-hdr, maxDatagram)
}

// readMax is the largest datagram this side reads, told to the peer.
func (c *Conn) readMax() int {
	if c.s.cfg.MaxPacketSize > 0 {
		return c.s.cfg.MaxPacketSize
	}
	return maxDatagram
}

// setPeerMax takes the peer's extMaxPacket (0: absent): a peer that does
// not say gets at most an Ethernet-sized datagram.
func (c *Conn) setPeerMax(v uint32) {
	peer := 1500 - 28
	if c.remote.Addr().Is6() {
		peer = 1500 - 48
	}
	if v != 0 {
		peer = int(min(v, maxDatagram))
	}
	c.peerMax = max(peer, minPacketSize)
	c.mtuCeil = min(c.linkCeil(), c.peerMax)
	c.mtuFloor = min(c.mtuFloor, c.mtuCeil)
}

// mss is the payload of a full data packet.
func (c *Conn) mss() int { return c.mtuFloor - headerLen }

// initAccepted sets up a connection for an incoming SYN.
func (c *Conn) initAccepted(p *packet, now time.Time) {
	c.state = stateSynRecv
	c.halfOpen = true
	c.ackNr = p.seq
	c.seqNr = c.s.isn()
	c.sndUna = c.seqNr
	c.lossSeq = c.seqNr
	c.peerWnd = p.wnd
	c.lastRecv = now
	c.setPeerMax(p.maxPacket)
	if p.ts != 0 {
		c.replyMicro = c.s.micros(now) - p.ts
	}
}

// startDial sends the SYN.
func (c *Conn) startDial(now time.Time) {
	c.state = stateSynSent
	c.seqNr = c.s.isn()
	c.sndUna = c.seqNr
	c.lastRecv = now
	o := &outPacket{buf: c.s.pool.get(headerLen), typ: stSyn, seq: c.seqNr}
	c.seqNr++
	c.lossSeq = c.seqNr
	c.inflight = append(c.inflight, o)
	c.rtoStart = now
	c.transmit(o, now)
	c.armTimer(now)
}

// window is the receive window to advertise.
func (c *Conn) window() int {
	return max(0, c.recvBuf.max-c.recvBuf.Len()-c.oooBytes)
}

// fillHeader sets the fields every packet carries.
func (c *Conn) fillHeader(h *header, typ uint8, seq uint16, now time.Time) {
	h.typ = typ
	h.connID = c.sendID
	if typ == stSyn {
		h.connID = c.recvID
	}
	h.ts = c.s.micros(now)
	h.tsDiff = c.replyMicro
	c.advWnd = c.window()
	h.wnd = uint32(c.advWnd)
	h.seq = seq
	h.ack = c.ackNr
	c.ackPending = 0
}

// markLost takes a packet out of the flight until it is sent again.
func (c *Conn) markLost(o *outPacket) {
	if o.resend || o.sacked {
		return
	}
	o.resend = true
	c.curWindow -= o.payload()
}

// transmit sends (or resends) an in-flight packet.
func (c *Conn) transmit(o *outPacket, now time.Time) {
	var h header
	c.fillHeader(&h, o.typ, o.seq, now)
	o.sentAt = now
	o.transmits++
	c.lastSend = now
	if o.typ != stSyn && o.probe == 0 {
		putHeader(o.buf, &h)
		c.sendDatagram(o.buf, o)
		return
	}
	b := append(c.scratch[:0], make([]byte, headerLen)...)
	var next uint8
	if o.typ == stSyn {
		b = append(b, 0, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(c.readMax()))
		next = extMaxPacket
	} else {
		b, next = appendPad(b, o.probe-headerLen-o.payload(), 0)
	}
	h.ext = next
	putHeader(b, &h)
	b = append(b, o.buf[headerLen:]...)
	c.scratch = b
	c.sendDatagram(b, o)
}

// sendDatagram writes b. A datagram the kernel refuses as too large
// (EMSGSIZE, with path MTU discovery on the owner's socket) lowers the
// ceiling like a lost probe.
func (c *Conn) sendDatagram(b []byte, o *outPacket) {
	if err := c.s.send(b, c.remote); err != nil {
		if isMsgSize(err) && len(b) > minPacketSize {
			c.mtuCeil = max(len(b)-1, minPacketSize)
			c.mtuFloor = min(c.mtuFloor, c.mtuCeil)
			if o != nil {
				c.markLost(o)
				if o.probe > 0 {
					o.probe = 0
					c.probing = false
				}
			}
		}
	}
}

// sendState sends an ack: with a selective ack when packets are missing,
// and, answering a SYN, the largest datagram we read.
func (c *Conn) sendState(now time.Time) {
	var h header
	c.fillHeader(&h, stState, c.seqNr, now)
	b := append(c.scratch[:0], make([]byte, headerLen)...)
	var first uint8
	link := -1 // offset of the previous extension's "next" byte
	addExt := func(t uint8, body []byte) {
		if link < 0 {
			first = t
		} else {
			b[link] = t
		}
		link = len(b)
		b = append(b, 0, byte(len(body)))
		b = append(b, body...)
	}
	if c.state == stateSynRecv {
		addExt(extMaxPacket, binary.BigEndian.AppendUint32(nil, uint32(c.readMax())))
	}
	if len(c.ooo) > 0 {
		addExt(extSack, c.sackMask())
	}
	h.ext = first
	putHeader(b, &h)
	c.scratch = b
	c.lastSend = now
	_ = c.s.send(b, c.remote)
}

// sackMask is the selective ack of the out of order packets held.
func (c *Conn) sackMask() []byte {
	// Bit i stands for ackNr+2+i, that is distance i+2.
	n := (int(c.oooMax) - 2 + 1 + 31) / 32 * 4
	n = min(max(n, 4), maxSackBytes)
	m := make([]byte, n)
	for seq := range c.ooo {
		i := int(uint16(seq-c.ackNr)) - 2
		if i >= 0 && i < n*8 {
			m[i/8] |= 1 << (i % 8)
		}
	}
	return m
}

// flush sends what the windows allow: packets marked lost first, then new
// data and the FIN. force sends one packet even if the windows are shut
// (a zero window probe). It reports whether it sent anything.
func (c *Conn) flush(now time.Time, force bool) bool {
	if c.state != stateConnected && c.state != stateSynRecv {
		return false
	}
	sent := false
	wnd := min(int(c.cc.cwnd), int(c.peerWnd))
	for _, o := range c.inflight[c.head:] {
		if !o.resend || o.sacked {
			continue
		}
		if c.curWindow > 0 && c.curWindow+o.payload() > wnd && !(force && !sent) {
			break
		}
		o.resend = false
		c.curWindow += o.payload()
		c.transmit(o, now)
		sent = true
	}
	freed := false
	for {
		n := min(c.sendBuf.Len(), c.mss())
		if n == 0 && !(c.finQueued && !c.finSent) {
			break
		}
		if len(c.inflight)-c.head >= maxReorder/2 {
			break
		}
		inFlight := len(c.inflight) > c.head
		if c.curWindow > 0 && c.curWindow+n > wnd && !(force && !sent) {
			break
		}
		if !inFlight && n > int(c.peerWnd) && !force && n > 0 {
			if c.stallSince.IsZero() {
				c.stallSince = now
			}
			break
		}
		c.stallSince = time.Time{}
		typ := uint8(stData)
		if n == 0 {
			typ = stFin
			c.finSent = true
		}
		o := &outPacket{buf: c.s.pool.get(headerLen + n), typ: typ, seq: c.seqNr}
		c.sendBuf.Read(o.buf[headerLen:])
		freed = freed || n > 0
		if typ == stData && n == c.mss() && !c.probing && c.mtuCeil-c.mtuFloor >= probeStep {
			o.probe = (c.mtuFloor + c.mtuCeil) / 2
			if o.probe-c.mtuFloor == 1 {
				o.probe++
			}
			c.probing = true
			c.probeSeq = o.seq
		}
		c.seqNr++
		if !inFlight {
			c.rtoStart = now
		}
		c.inflight = append(c.inflight, o)
		c.curWindow += n
		c.transmit(o, now)
		sent = true
	}
	if freed {
		signal(c.writable)
	}
	if sent {
		c.armTimer(now)
	}
	return sent
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// receive handles one packet of this connection.
func (c *Conn) receive(p *packet, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateDead {
		return
	}
	if p.typ == stReset {
		if c.state == stateSynSent {
			c.die(ErrRefused, false)
		} else {
			c.die(ErrReset, false)
		}
		return
	}
	c.lastRecv = now
	if p.ts != 0 {
		c.replyMicro = c.s.micros(now) - p.ts
	}
	switch c.state {
	case stateSynSent:
		if p.typ == stSyn || p.ack != c.sndUna {
			return
		}
		c.state = stateConnected
		c.ackNr = p.seq - 1
		c.setPeerMax(p.maxPacket)
		close(c.established)
	case stateSynRecv:
		if p.typ == stSyn {
			c.sendState(now) // our answer was lost
			return
		}
		c.state = stateConnected
		c.halfOpen = false
		c.s.established()
	default:
		if p.typ == stSyn {
			return
		}
	}
	c.peerWnd = p.wnd
	c.processAck(p, now)
	ackNow := false
	if p.typ == stData || p.typ == stFin {
		inOrder := c.receiveData(p)
		// Every other in-order packet is acked at once, the odd one
		// within delayedAck; anything unusual (a gap, a duplicate, the
		// FIN) at once, so that losses are seen without delay.
		c.ackPending++
		ackNow = !inOrder || p.typ == stFin || len(c.ooo) > 0 || c.ackPending >= 2
		if c.ackPending == 1 && !ackNow {
			c.ackDue = now.Add(delayedAck)
			c.s.pendingAck(c)
		}
	}
	c.flush(now, false)
	if c.ackPending > 0 && ackNow {
		c.sendState(now)
	}
	c.checkDone(now)
	c.armTimer(now)
}

// seqLess compares wrapping sequence numbers.
func seqLess(a, b uint16) bool { return int16(a-b) < 0 }

// processAck takes the cumulative and selective acks of p.
func (c *Conn) processAck(p *packet, now time.Time) {
	n := int(p.ack - c.sndUna + 1)
	if n > len(c.inflight)-c.head {
		n = 0 // an old ack, or one for packets never sent
	}
	limited := c.curWindow+c.mss() >= int(c.cc.cwnd)
	acked := 0
	for range n {
		o := c.inflight[c.head]
		c.inflight[c.head] = nil
		c.head++
		if !o.sacked {
			acked += o.payload()
			if !o.resend {
				c.curWindow -= o.payload()
			}
			c.ackedOne(o, now)
		}
		if o.typ == stFin {
			c.finAcked = true
		}
		c.s.pool.put(o.buf)
	}
	c.sndUna += uint16(n)
	if c.head == len(c.inflight) {
		c.inflight, c.head = c.inflight[:0], 0
	} else if c.head > 1024 && c.head > len(c.inflight)/2 {
		k := copy(c.inflight, c.inflight[c.head:])
		clear(c.inflight[k:])
		c.inflight, c.head = c.inflight[:k], 0
	}
	outstanding := len(c.inflight) - c.head
	if n > 0 {
		c.dupAcks = 0
		c.timeouts = 0
		c.rtoStart = now
	} else if p.typ == stState && outstanding > 0 && p.ack == c.sndUna-1 {
		c.dupAcks++
		if c.dupAcks == 3 {
			c.lost(c.inflight[c.head])
		}
	}
	if p.sack != nil && outstanding > 0 {
		base := int(uint16(p.ack + 2 - c.sndUna)) // inflight index of bit 0
		if base < outstanding {
			for i := 0; i < len(p.sack)*8; i++ {
				if p.sack[i/8]&(1<<(i%8)) == 0 {
					continue
				}
				idx := base + i
				if idx >= outstanding {
					break
				}
				o := c.inflight[c.head+idx]
				if !o.sacked {
					if !o.resend {
						c.curWindow -= o.payload()
					}
					o.sacked = true
					o.resend = false
					acked += o.payload()
					c.ackedOne(o, now)
				}
			}
			// A packet with three or more selectively acked packets after
			// it is lost.
			after := 0
			for i := outstanding - 1; i >= 0; i-- {
				o := c.inflight[c.head+i]
				if o.sacked {
					after++
				} else if after >= 3 {
					c.lost(o)
				}
			}
		}
	}
	if acked > 0 {
		c.cc.onAck(acked, p.tsDiff, now, c.mss(), limited)
	}
}

// ackedOne takes an RTT sample and MTU probe result from an acked packet.
func (c *Conn) ackedOne(o *outPacket, now time.Time) {
	if o.transmits == 1 {
		c.rttSample(now.Sub(o.sentAt))
	}
	if o.probe > 0 && c.probing && o.seq == c.probeSeq {
		c.mtuFloor = max(c.mtuFloor, o.probe)
		c.probing = false
	}
}

// rttSample updates rtt, rtt_var and the time-out (BEP 29's formulas).
func (c *Conn) rttSample(r time.Duration) {
	if c.rtt == 0 {
		c.rtt, c.rttVar = r, r/2
	} else {
		d := c.rtt - r
		if d < 0 {
			d = -d
		}
		c.rttVar += (d - c.rttVar) / 4
		c.rtt += (r - c.rtt) / 8
	}
	c.rto = min(max(c.rtt+4*c.rttVar, minRTO), maxRTO)
}

// lost marks a packet for fast retransmission, halving the window once
// per window of data; a lost MTU probe lowers the ceiling instead.
func (c *Conn) lost(o *outPacket) {
	if o.fastResent || o.sacked {
		return
	}
	o.fastResent = true
	c.markLost(o)
	if o.probe > 0 {
		c.probeLost(o)
		return
	}
	if !seqLess(o.seq, c.lossSeq) {
		c.cc.onLoss(c.mss())
		c.lossSeq = c.seqNr
	}
}

func (c *Conn) probeLost(o *outPacket) {
	if c.probing && o.seq == c.probeSeq {
		c.mtuCeil = max(o.probe-1, c.mtuFloor)
		c.probing = false
	}
	o.probe = 0
}

// receiveData takes a DATA or FIN packet's payload. It reports whether
// the packet was the next one expected and taken.
func (c *Conn) receiveData(p *packet) (inOrder bool) {
	if p.typ == stFin && !c.gotFin {
		c.gotFin = true
		c.eofSeq = p.seq
	}
	if c.gotFin && seqLess(c.eofSeq, p.seq) {
		return false // nothing follows the FIN
	}
	d := uint16(p.seq - c.ackNr)
	switch {
	case d == 0 || d >= 0x8000:
		return false // a duplicate: the ack we send repeats what we have
	case d == 1:
		if !c.deliver(p.payload) {
			return false
		}
		inOrder = true
		c.ackNr++
		for len(c.ooo) > 0 {
			b, ok := c.ooo[c.ackNr+1]
			if !ok {
				break
			}
			delete(c.ooo, c.ackNr+1)
			c.oooBytes -= len(b)
			c.deliver(b)
			c.s.pool.put(b)
			c.ackNr++
		}
		if len(c.ooo) == 0 {
			c.oooMax = 0
		} else {
			c.oooMax = 0
			for seq := range c.ooo {
				c.oooMax = max(c.oooMax, seq-c.ackNr)
			}
		}
	case d <= maxReorder:
		if _, dup := c.ooo[p.seq]; dup || c.oooBytes+len(p.payload) > c.window() {
			return false
		}
		if c.ooo == nil {
			c.ooo = make(map[uint16][]byte)
		}
		b := c.s.pool.get(len(p.payload))
		copy(b, p.payload)
		c.ooo[p.seq] = b
		c.oooBytes += len(b)
		c.oooMax = max(c.oooMax, d)
	}
	if c.gotFin && c.ackNr == c.eofSeq && !c.eof {
		c.eof = true
		signal(c.readable)
	}
	return inOrder
}

// deliver appends in-order payload for Read; after Close it is dropped.
func (c *Conn) deliver(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if c.userClosed {
		return true
	}
	if c.recvBuf.Free() < len(b) {
		return false
	}
	c.recvBuf.Write(b)
	signal(c.readable)
	return true
}

// checkDone ends a closed connection once its FIN is acked and the peer
// finished too (or the linger time ran out).
func (c *Conn) checkDone(now time.Time) {
	if !c.userClosed || !c.finAcked {
		return
	}
	if c.lingerEnd.IsZero() {
		c.lingerEnd = now.Add(linger)
	}
	if c.eof || !now.Before(c.lingerEnd) {
		c.die(net.ErrClosed, false)
	}
}

// die ends the connection with err (under mu).
func (c *Conn) die(err error, reset bool) {
	if c.state == stateDead {
		return
	}
	if reset && c.state != stateSynSent {
		var b [headerLen]byte
		putHeader(b[:], &header{typ: stReset, connID: c.sendID, ts: c.s.micros(time.Now()), seq: c.seqNr, ack: c.ackNr})
		_ = c.s.send(b[:], c.remote)
	}
	wasHalfOpen := c.halfOpen
	c.halfOpen = false
	c.state = stateDead
	if c.err == nil {
		c.err = err
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	for _, o := range c.inflight[c.head:] {
		c.s.pool.put(o.buf)
	}
	c.inflight, c.head = nil, 0
	for _, b := range c.ooo {
		c.s.pool.put(b)
	}
	c.ooo, c.oooBytes = nil, 0
	close(c.dead)
	signal(c.readable)
	signal(c.writable)
	c.s.remove(c, wasHalfOpen) // the Socket never takes a Conn's lock under its own
}

// abort kills the connection from outside its lock.
func (c *Conn) abort(err error, reset bool) {
	c.mu.Lock()
	c.die(err, reset)
	c.mu.Unlock()
}

func (c *Conn) terminalErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// armTimer makes sure the timer fires by the next deadline.
func (c *Conn) armTimer(now time.Time) {
	if c.state == stateDead {
		return
	}
	next := c.nextDeadline(now)
	if !c.timerAt.IsZero() && !next.Before(c.timerAt) {
		return // it fires earlier and re-arms then
	}
	c.timerAt = next
	d := next.Sub(now)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.onTimer)
	} else {
		c.timer.Reset(d)
	}
}

func (c *Conn) idleLimit() time.Duration {
	if c.state == stateSynRecv {
		return halfOpenIdle
	}
	return c.s.cfg.IdleTimeout
}

func (c *Conn) nextDeadline(now time.Time) time.Time {
	next := c.lastRecv.Add(c.idleLimit())
	earlier := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if len(c.inflight) > c.head {
		earlier(c.rtoStart.Add(c.rto))
	} else if !c.stallSince.IsZero() {
		earlier(c.stallSince.Add(c.rto))
	}
	if c.state == stateConnected {
		earlier(c.lastSend.Add(c.s.cfg.KeepAlive))
	}
	if !c.lingerEnd.IsZero() {
		earlier(c.lingerEnd)
	}
	if c.ackPending > 0 {
		earlier(c.ackDue)
	}
	return next
}

func (c *Conn) onTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timerAt = time.Time{}
	if c.state == stateDead {
		return
	}
	now := time.Now()
	if now.Sub(c.lastRecv) >= c.idleLimit() {
		c.die(ErrTimeout, true)
		return
	}
	if len(c.inflight) > c.head && !now.Before(c.rtoStart.Add(c.rto)) {
		c.timeouts++
		if c.timeouts > c.s.cfg.MaxTimeouts {
			c.die(ErrTimeout, true)
			return
		}
		c.rto = min(c.rto*2, maxRTO)
		c.rtoStart = now
		if c.timeouts >= 3 && c.mtuFloor > safeDatagram {
			// The path may have shrunk: fall back to the safe size.
			c.mtuFloor, c.mtuCeil = safeDatagram, safeDatagram
		}
		c.cc.onTimeout(c.mss())
		c.lossSeq = c.seqNr
		// Everything not selectively acked is taken as lost and resent
		// as the (now one packet) window allows.
		oldest := true
		for _, o := range c.inflight[c.head:] {
			if o.sacked {
				continue
			}
			if o.probe > 0 && oldest {
				c.probeLost(o) // the probe itself timed out; later ones are resent padded
			}
			oldest = false
			if c.state == stateSynSent {
				c.transmit(o, now)
				break
			}
			c.markLost(o)
		}
		c.flush(now, false)
	} else if !c.stallSince.IsZero() && !now.Before(c.stallSince.Add(c.rto)) {
		c.stallSince = time.Time{}
		c.flush(now, true)
	}
	if c.ackPending > 0 && !now.Before(c.ackDue) {
		c.sendState(now)
	}
	if c.state == stateConnected && !now.Before(c.lastSend.Add(c.s.cfg.KeepAlive)) {
		c.sendState(now)
	}
	c.checkDone(now)
	c.armTimer(now)
}

// Read reads in-order data; io.EOF once the peer's FIN and everything
// before it are read.
func (c *Conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	for {
		if c.userClosed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if c.recvBuf.Len() > 0 {
			if len(b) == 0 {
				c.mu.Unlock()
				return 0, nil
			}
			n := c.recvBuf.Read(b)
			// A window that had shrunk below half reopened: tell the peer.
			if c.state != stateDead && c.advWnd < c.recvBuf.max/2 && c.window() >= c.recvBuf.max/2 {
				c.sendState(time.Now())
			}
			c.mu.Unlock()
			return n, nil
		}
		if c.eof {
			c.mu.Unlock()
			return 0, io.EOF
		}
		if c.state == stateDead {
			err := c.err
			c.mu.Unlock()
			return 0, &net.OpError{Op: "read", Net: "utp", Addr: c.RemoteAddr(), Err: err}
		}
		dl := c.readDL
		c.mu.Unlock()
		if err := waitFor(c.readable, dl, c.dead); err != nil {
			return 0, &net.OpError{Op: "read", Net: "utp", Addr: c.RemoteAddr(), Err: err}
		}
		c.mu.Lock()
	}
}

// waitFor waits for a signal on ch, the deadline, or dead (which returns
// nil: the caller then sees the state).
func waitFor(ch chan struct{}, dl time.Time, dead chan struct{}) error {
	if dl.IsZero() {
		select {
		case <-ch:
		case <-dead:
		}
		return nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-dead:
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Write queues b for sending, waiting while the send buffer is full.
func (c *Conn) Write(b []byte) (int, error) {
	done := 0
	c.mu.Lock()
	for {
		if c.userClosed || c.finQueued {
			c.mu.Unlock()
			return done, net.ErrClosed
		}
		if c.state == stateDead {
			err := c.err
			c.mu.Unlock()
			return done, &net.OpError{Op: "write", Net: "utp", Addr: c.RemoteAddr(), Err: err}
		}
		done += c.sendBuf.Write(b[done:])
		c.flush(time.Now(), false)
		if done == len(b) {
			c.mu.Unlock()
			return done, nil
		}
		dl := c.writeDL
		c.mu.Unlock()
		if err := waitFor(c.writable, dl, c.dead); err != nil {
			return done, &net.OpError{Op: "write", Net: "utp", Addr: c.RemoteAddr(), Err: err}
		}
		c.mu.Lock()
	}
}

// Close sends what is buffered, then a FIN, and returns at once; the
// connection lingers until the FIN is acknowledged. Data that arrives
// later is acknowledged and dropped.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.userClosed = true
		c.recvBuf = ring{max: c.recvBuf.max}
		signal(c.readable)
		signal(c.writable)
		switch c.state {
		case stateDead:
			return
		case stateSynSent:
			c.die(net.ErrClosed, false)
			return
		}
		now := time.Now()
		c.finQueued = true
		c.flush(now, false)
		c.checkDone(now)
		c.armTimer(now)
	})
	return nil
}

// LocalAddr is the local address of the Socket's UDP socket.
func (c *Conn) LocalAddr() net.Addr { return c.s.tr.LocalAddr() }

// RemoteAddr is the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(c.remote) }

// RemoteAddrPort is the peer's UDP address.
func (c *Conn) RemoteAddrPort() netip.AddrPort { return c.remote }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline makes a waiting or later Read fail after t.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDL = t
	c.mu.Unlock()
	signal(c.readable)
	return nil
}

// SetWriteDeadline makes a waiting or later Write fail after t.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDL = t
	c.mu.Unlock()
	signal(c.writable)
	return nil
}

// Stats is a snapshot of a connection's congestion state, for tests and
// diagnostics.
type Stats struct {
	Window     int           // congestion window, bytes
	QueueDelay time.Duration // the last queuing delay measured
	RTT        time.Duration
	PacketSize int // datagram size in use
	InFlight   int // payload bytes in flight
}

// Stats returns the connection's congestion state.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Window:     int(c.cc.cwnd),
		QueueDelay: time.Duration(c.cc.ourDelay) * time.Microsecond,
		RTT:        c.rtt,
		PacketSize: c.mtuFloor,
		InFlight:   c.curWindow,
	}
}
