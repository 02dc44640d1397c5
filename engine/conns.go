package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/internal/rawsock"
	"github.com/sowerbt/sower/peerwire"
)

// candidate is a peer address we may dial.
type candidate struct {
	failures int       // failed dials and early disconnects in a row
	nextTry  time.Time // not dialled before
	hint     PeerHint  // what we know of its encryption
	reason   string    // why the last attempt failed, for logs
	dropped  bool      // given up after maxDialFailures: never dialled again
}

// Dial back-off: after n failures in a row (a refused, unreachable or
// timed-out dial, or a connection that ended within earlyDisconnect), an
// address waits dialBackoff·2^(n-1), ±25 %, at most maxBackoff; after
// maxDialFailures it is not dialled again, even if a tracker, the DHT or
// PEX name it again. A dead address costs a handful of dials, not one
// every half second.
const (
	dialBackoff     = 2 * time.Second
	maxBackoff      = 15 * time.Minute
	maxDialFailures = 8
	earlyDisconnect = 30 * time.Second
)

// backoff is the wait after n failures in a row.
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := min(dialBackoff<<min(n-1, 16), maxBackoff)
	return min(time.Duration(float64(d)*(0.75+0.5*rand.Float64())), maxBackoff)
}

// failed records a failed attempt on c at now; it reports whether the
// address is given up.
func (c *candidate) failed(now time.Time, reason string) bool {
	c.failures++
	c.reason = reason
	if c.failures >= maxDialFailures {
		c.dropped = true
		return true
	}
	// Never sooner than a longer wait set meanwhile (a seed we are done
	// with, ourselves).
	if next := now.Add(backoff(c.failures)); next.After(c.nextTry) {
		c.nextTry = next
	}
	return false
}

// handshaked is a connection whose BitTorrent handshake is done, or (conn
// nil, outgoing) a dial to addr that failed with err.
type handshaked struct {
	err      error
	conn     net.Conn
	addr     netip.AddrPort // the address dialled; for incoming ones, RemoteAddr's
	id       [20]byte
	reserved peerwire.Reserved
	outgoing bool
}

// banKey is what a ban applies to: the IP address, as peers come back on
// new ports; but on loopback, where every test peer and local client
// shares one address, the address and port.
func banKey(a netip.AddrPort) netip.AddrPort {
	if a.Addr().IsLoopback() {
		return a
	}
	return netip.AddrPortFrom(a.Addr(), 0)
}

func (t *Torrent) learn(addrs []netip.AddrPort) {
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !a.IsValid() || a.Port() == 0 || t.banned[banKey(a)] {
			continue
		}
		if t.cfg.Port != 0 && a.Port() == t.cfg.Port && a.Addr().IsLoopback() {
			// Trackers hand us back to ourselves; the handshake would
			// catch it too, but a dial is wasted.
			continue
		}
		if _, ok := t.known[a]; !ok {
			t.known[a] = &candidate{}
		}
	}
}

// redialAfter is the shortest wait before an address is dialled again, and
// how soon after a failed dial the owner looks for another one to dial.
const redialAfter = 500 * time.Millisecond

// dialMore starts dials to known, unconnected peers while limits allow.
func (t *Torrent) dialMore(ctx context.Context, wg *sync.WaitGroup, now time.Time) {
	for a, c := range t.known {
		if len(t.peers)+t.dialing >= t.cfg.MaxPeers || t.dialing >= t.cfg.MaxDialing {
			return
		}
		if c.dropped || t.byAddr[a] != nil || now.Before(c.nextTry) || t.banned[banKey(a)] {
			continue
		}
		if t.cfg.Gate != nil && !t.cfg.Gate.Admit(a) {
			continue // over a shared limit: try again later
		}
		// Pushed now so a dial in flight is not repeated; the outcome
		// sets the real next try (dialFailed, dropPeer).
		c.nextTry = now.Add(max(backoff(c.failures+1), redialAfter))
		t.dialing++
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := t.dial(ctx, a, c.hint)
			if t.cfg.Gate != nil {
				if err != nil {
					t.cfg.Gate.Release(a)
				} else {
					h.conn = Gated(h.conn, t.cfg.Gate, a)
				}
			}
			if err != nil {
				h = &handshaked{outgoing: true, addr: a, err: err} // reports the dial slot free
			}
			select {
			case t.conns <- h:
			case <-ctx.Done():
				if h.conn != nil {
					h.conn.Close()
				}
			}
		}()
	}
}

func (t *Torrent) ourHandshake() peerwire.Handshake {
	h := peerwire.Handshake{InfoHash: t.infoHash, PeerID: t.cfg.PeerID}
	h.Reserved.SetFast()
	h.Reserved.SetExtended()
	if t.cfg.DHTPort != 0 && !t.info.Private {
		h.Reserved.SetDHT()
	}
	return h
}

func (t *Torrent) dial(ctx context.Context, a netip.AddrPort, hint PeerHint) (*handshaked, error) {
	conn, err := t.connect(ctx, a, hint)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(t.cfg.DialTimeout + 10*time.Second))
	h, err := peerwire.ReadHandshake(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read handshake: %w", err)
	}
	if h.InfoHash != t.infoHash {
		conn.Close()
		return nil, fmt.Errorf("peer answered for another torrent %x", h.InfoHash)
	}
	conn.SetDeadline(time.Time{})
	return &handshaked{conn: conn, addr: a, id: h.PeerID, reserved: h.Reserved, outgoing: true}, nil
}

// connect opens a connection to a and sends our handshake on it, through
// Config.Connect when set (the session's encryption), else Dial.
func (t *Torrent) connect(ctx context.Context, a netip.AddrPort, hint PeerHint) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	var hs bytes.Buffer
	peerwire.WriteHandshake(&hs, t.ourHandshake()) // a bytes.Buffer takes it all
	if t.cfg.Connect != nil {
		return t.cfg.Connect(dctx, a, hs.Bytes(), hint)
	}
	conn, err := t.cfg.Dial(dctx, a)
	if err != nil {
		return nil, err
	}
	conn.SetWriteDeadline(time.Now().Add(t.cfg.DialTimeout + 10*time.Second))
	if _, err := conn.Write(hs.Bytes()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send handshake: %w", err)
	}
	return conn, nil
}

// AcceptIncoming finishes the handshake of an incoming connection whose
// first part (protocol, reserved bits and info-hash, see
// peerwire.ReadHandshakeStart) the caller already read and routed to this
// torrent, and hands it to Run. It takes ownership of conn: it closes it
// on failure, or when ctx ends or Run returns before Run takes it. It
// blocks until then, so callers run it on the connection's goroutine.
func (t *Torrent) AcceptIncoming(ctx context.Context, conn net.Conn, reserved peerwire.Reserved) {
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := peerwire.WriteHandshake(conn, t.ourHandshake()); err != nil {
		conn.Close()
		return
	}
	id, err := peerwire.ReadPeerID(conn)
	if err != nil {
		t.log.Debug("incoming handshake", "peer", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	select {
	case t.conns <- &handshaked{conn: conn, id: id, reserved: reserved}:
	case <-ctx.Done():
		conn.Close()
	case <-t.stopped:
		conn.Close()
	}
}

// addConn turns a handshaked connection into a running peer.
func (t *Torrent) addConn(ctx context.Context, wg *sync.WaitGroup, h *handshaked) {
	if h.conn == nil {
		return // failed dial
	}
	ap := h.addr
	if !ap.IsValid() {
		// Incoming: any net.Conn will do, but only one with an IP
		// address and port can be told apart from others, banned, and
		// announced over PEX.
		var err error
		if ap, err = netip.ParseAddrPort(h.conn.RemoteAddr().String()); err != nil {
			t.log.Debug("dropping connection without an IP address", "peer", h.conn.RemoteAddr(), "err", err)
			h.conn.Close()
			return
		}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	switch {
	case h.id == t.cfg.PeerID:
		t.log.Debug("dropping connection to ourselves", "peer", ap)
		if c := t.known[ap]; c != nil {
			c.nextTry = time.Now().Add(24 * time.Hour)
		}
		h.conn.Close()
		return
	case t.banned[banKey(ap)]:
		h.conn.Close()
		return
	case len(t.peers) >= t.cfg.MaxPeers:
		h.conn.Close()
		return
	}
	for q := range t.peers {
		if q.id != h.id {
			continue
		}
		// Connected twice, usually because both sides dialed at once.
		// Both ends must drop the same connection, or both are lost:
		// keep the one dialed by the peer with the lower id.
		if bytes.Compare(t.dialerID(h.outgoing, h.id), t.dialerID(q.outgoing, q.id)) >= 0 {
			h.conn.Close()
			return
		}
		t.closePeerQuietly(q)
	}
	enc := encryptionOf(h.conn)
	if c := t.known[ap]; c != nil {
		if h.outgoing {
			// Under a "prefer" policy the next dial goes plaintext
			// first if this one had to fall back.
			c.hint.Plaintext = enc == EncryptionNone
		}
	}
	var conn net.Conn
	if g, ok := h.conn.(*gatedConn); ok {
		// Raw I/O needs the socket itself; the slot stays with the wrapper.
		g.Conn = rawsock.Wrap(g.Conn)
		conn = g
	} else {
		conn = rawsock.Wrap(h.conn)
	}
	if t.cfg.UploadLimit != nil || t.cfg.DownloadLimit != nil {
		conn = &limitedConn{Conn: conn, ctx: ctx, up: t.cfg.UploadLimit, down: t.cfg.DownloadLimit}
	}
	p := &peer{
		conn:        conn,
		addr:        ap,
		id:          h.id,
		reserved:    h.reserved,
		outgoing:    h.outgoing,
		client:      peerwire.ClientName(h.id),
		encryption:  enc,
		notify:      make(chan struct{}, 1),
		closed:      make(chan struct{}),
		has:         bitfield.New(t.info.NumPieces()),
		amChoking:   true,
		peerChoking: true,
		pending:     make(map[blockKey]time.Time),
		cancelled:   make(map[blockKey]struct{}),
		maxRequests: 250,
		offered:     -1,
		depth:       minDepth,
		connected:   time.Now(),
		lastPiece:   time.Now(),
	}
	t.peers[p] = struct{}{}
	t.byAddr[ap] = p
	t.log.Debug("peer connected", "peer", ap, "client", p.client, "outgoing", h.outgoing, "encryption", enc)

	if p.reserved.SupportsExtended() {
		p.send(t.extHandshake(p))
	}
	if t.cfg.DHTPort != 0 && !t.info.Private && p.reserved.SupportsDHT() {
		p.send(peerwire.Message{ID: peerwire.Port, Port: t.cfg.DHTPort})
	}
	switch {
	case t.superSeeding():
		// Reveal pieces one at a time (superOffer), never the bitfield.
		if p.fast() {
			p.send(peerwire.Message{ID: peerwire.HaveNone})
		}
	case p.fast() && t.pk.seeding():
		p.send(peerwire.Message{ID: peerwire.HaveAll})
	case p.fast() && t.pk.haveCount() == 0:
		p.send(peerwire.Message{ID: peerwire.HaveNone})
	case t.pk.haveCount() > 0:
		p.send(peerwire.Message{ID: peerwire.Bitfield, Payload: t.pk.haveSet().Bytes()})
	}
	dec := peerwire.NewDecoder(conn, peerwire.Limits{
		NumPieces:   t.info.NumPieces(),
		PieceLength: t.info.PieceLength,
		TotalLength: t.info.TotalLength(),
		MaxBlock:    128 << 10,
	})
	// The owner holds the cancel func (closePeer uses it), so it is made
	// here rather than in the peer's goroutine.
	pctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.runPeer(pctx, p, dec)
	}()
}

// dropPeer forgets a peer whose goroutines have stopped.
func (t *Torrent) dropPeer(p *peer, reason error) {
	if _, ok := t.peers[p]; !ok {
		return
	}
	delete(t.peers, p)
	if t.byAddr[p.addr] == p {
		delete(t.byAddr, p.addr)
	}
	t.pk.peerGone(p.has)
	t.releaseAll(p)
	t.releaseOffer(p)
	t.forgetServing(p)
	if !p.amChoking {
		t.fillSlots()
	}
	if c := t.known[p.addr]; c != nil && p.outgoing {
		now := time.Now()
		if now.Sub(p.connected) >= earlyDisconnect {
			c.failures = 0 // it worked: a later disconnect starts afresh
		} else if c.failed(now, fmt.Sprint("disconnected early: ", reason)) {
			t.log.Debug("giving up on peer", "peer", p.addr, "failures", c.failures, "reason", c.reason)
		}
	}
	t.log.Debug("peer disconnected", "peer", p.addr, "reason", reason)
}

// closePeer disconnects a peer for a protocol reason; dropPeer runs when
// its goroutines report back.
func (t *Torrent) closePeer(p *peer, reason string) {
	t.protocolCloses.Add(1)
	t.log.Info("closing peer connection", "peer", p.addr, "client", p.client, "reason", reason)
	if p.cancel != nil {
		p.cancel()
	}
	p.conn.Close()
}

// dialerID is the peer id of the side that opened a connection.
func (t *Torrent) dialerID(outgoing bool, theirs [20]byte) []byte {
	if outgoing {
		return t.cfg.PeerID[:]
	}
	return theirs[:]
}

// closePeerQuietly drops a redundant connection; it is not a misbehaviour.
func (t *Torrent) closePeerQuietly(p *peer) {
	t.log.Debug("dropping duplicate connection", "peer", p.addr)
	if p.cancel != nil {
		p.cancel()
	}
	p.conn.Close()
}

// closeSeed drops a connection to a seed once we are a seed too, and does
// not dial it again for a long while: two seeds have nothing to trade.
func (t *Torrent) closeSeed(p *peer) {
	if c := t.known[p.listenAddr()]; c != nil {
		c.nextTry = time.Now().Add(30 * time.Minute)
	}
	t.closePeerQuietly(p)
}

// dialFailed records a failed dial to a.
func (t *Torrent) dialFailed(a netip.AddrPort, err error, now time.Time) {
	c := t.known[a]
	if c == nil {
		return
	}
	if c.failed(now, err.Error()) {
		t.log.Debug("giving up on peer", "peer", a, "failures", c.failures, "reason", c.reason)
		return
	}
	t.log.Debug("dial failed", "peer", a, "err", err, "failures", c.failures, "next_try", c.nextTry.Format(time.TimeOnly))
}
