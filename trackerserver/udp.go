package trackerserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"
)

// BEP 15 constants.
const (
	udpProtocolID  = 0x41727101980
	udpConnect     = 0
	udpAnnounce    = 1
	udpScrape      = 2
	udpError       = 3
	udpHeaderLen   = 16
	udpAnnounceLen = 98
	udpMaxScrape   = 74
	// udpMaxPeers keeps an announce answer within a 1,500-byte Ethernet
	// frame for IPv6 (20 + 74*18 = 1,352 bytes).
	udpMaxPeers = 74
)

// udpRequest is a parsed client packet.
type udpRequest struct {
	connID   uint64
	action   uint32
	tid      uint32
	announce announceParams
	// urlData is the BEP 41 URLData of an announce: the announce URL's
	// path and query, which carries a private tracker's passkey.
	urlData []byte
	hashes  [][20]byte
}

// udpPacketError is a malformed packet that is answered with an error
// packet (when the transaction id is known) rather than dropped.
type udpPacketError struct {
	tid  uint32
	msg  string
	drop bool
}

func (e *udpPacketError) Error() string { return e.msg }

// parseUDPRequest decodes a client-to-tracker packet (BEP 15, 41). It
// copies nothing but the scrape hashes and URL data, both bounded by the
// packet size. Packets too short to carry a transaction id are dropped;
// other malformed packets get an error naming the field.
func parseUDPRequest(pkt []byte) (udpRequest, error) {
	var r udpRequest
	if len(pkt) < udpHeaderLen {
		return r, &udpPacketError{drop: true, msg: fmt.Sprintf("packet of %d bytes is shorter than the %d-byte header", len(pkt), udpHeaderLen)}
	}
	r.connID = binary.BigEndian.Uint64(pkt[0:])
	r.action = binary.BigEndian.Uint32(pkt[8:])
	r.tid = binary.BigEndian.Uint32(pkt[12:])
	bad := func(format string, args ...any) error {
		return &udpPacketError{tid: r.tid, msg: fmt.Sprintf(format, args...)}
	}
	switch r.action {
	case udpConnect:
		if r.connID != udpProtocolID {
			// Not a BitTorrent client: do not answer.
			return r, &udpPacketError{drop: true, msg: fmt.Sprintf("connect with protocol id %#x", r.connID)}
		}
	case udpAnnounce:
		if len(pkt) < udpAnnounceLen {
			return r, bad("announce of %d bytes is shorter than %d", len(pkt), udpAnnounceLen)
		}
		a := &r.announce
		copy(a.infoHash[:], pkt[16:36])
		copy(a.peerID[:], pkt[36:56])
		down := int64(binary.BigEndian.Uint64(pkt[56:]))
		left := int64(binary.BigEndian.Uint64(pkt[64:]))
		up := int64(binary.BigEndian.Uint64(pkt[72:]))
		switch {
		case down < 0:
			return r, bad("downloaded: negative value %d", down)
		case left < 0:
			return r, bad("left: negative value %d", left)
		case up < 0:
			return r, bad("uploaded: negative value %d", up)
		}
		a.downloaded, a.left, a.uploaded = down, left, up
		switch ev := binary.BigEndian.Uint32(pkt[80:]); ev {
		case 0:
			a.event = eventNone
		case 1:
			a.event = eventCompleted
		case 2:
			a.event = eventStarted
		case 3:
			a.event = eventStopped
		default:
			return r, bad("event: unknown value %d", ev)
		}
		// pkt[84:88] is an IP address the client may suggest; the source
		// address is used instead so that nobody can announce others.
		a.key, a.hasKey = binary.BigEndian.Uint32(pkt[88:]), true
		nw := int32(binary.BigEndian.Uint32(pkt[92:]))
		a.numWant = int(nw)
		if nw < 0 {
			a.numWant = -1
		}
		a.port = binary.BigEndian.Uint16(pkt[96:])
		if a.port == 0 {
			return r, bad("port: 0 is not a port peers can connect to")
		}
		a.compact = true
		ud, err := parseUDPOptions(pkt[udpAnnounceLen:])
		if err != nil {
			return r, bad("%v", err)
		}
		r.urlData = ud
	case udpScrape:
		body := pkt[udpHeaderLen:]
		if len(body) == 0 || len(body)%20 != 0 {
			return r, bad("scrape: %d bytes of info-hashes is not a positive multiple of 20", len(body))
		}
		n := len(body) / 20
		if n > udpMaxScrape {
			return r, bad("scrape: %d info-hashes, at most %d allowed", n, udpMaxScrape)
		}
		r.hashes = make([][20]byte, n)
		for i := range r.hashes {
			copy(r.hashes[i][:], body[i*20:])
		}
	default:
		return r, bad("unknown action %d", r.action)
	}
	return r, nil
}

// parseUDPOptions decodes BEP 41 options after an announce and returns the
// concatenated URLData.
func parseUDPOptions(b []byte) ([]byte, error) {
	var url []byte
	for off := 0; off < len(b); {
		switch b[off] {
		case 0: // EndOfOptions
			return url, nil
		case 1: // NOP
			off++
		case 2: // URLData
			if off+1 >= len(b) {
				return nil, fmt.Errorf("option at offset %d: URLData without length", udpAnnounceLen+off)
			}
			n := int(b[off+1])
			if off+2+n > len(b) {
				return nil, fmt.Errorf("option at offset %d: URLData of %d bytes overruns the packet", udpAnnounceLen+off, n)
			}
			url = append(url, b[off+2:off+2+n]...)
			off += 2 + n
		default:
			// BEP 41: unknown options have a length byte and are skipped.
			if off+1 >= len(b) {
				return nil, fmt.Errorf("option %d at offset %d: no length", b[off], udpAnnounceLen+off)
			}
			n := int(b[off+1])
			if off+2+n > len(b) {
				return nil, fmt.Errorf("option %d at offset %d: %d bytes overrun the packet", b[off], udpAnnounceLen+off, n)
			}
			off += 2 + n
		}
	}
	return url, nil
}

// passkeyFromPath extracts the passkey from "/<passkey>/announce[?...]".
func passkeyFromPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	p = strings.TrimPrefix(p, "/")
	pk, rest, ok := strings.Cut(p, "/")
	if !ok || rest != "announce" {
		return ""
	}
	return pk
}

// serveUDP answers packets on pc until it is closed (by Serve, when ctx
// ends), with up to udpMaxWorkers goroutines to use more than one core.
func (s *Server) serveUDP(ctx context.Context, pc net.PacketConn) error {
	uc, _ := pc.(*net.UDPConn)
	return s.serveUDPWorkers(ctx, pc, uc, min(runtime.GOMAXPROCS(0), udpMaxWorkers))
}

// udpMaxWorkers bounds the goroutines answering one UDP socket: past a few,
// the socket's queue lock, not the announce work, limits the rate.
const udpMaxWorkers = 4

// serveUDPEach runs workers goroutines that each read one packet at a time
// from pc (the path for sockets that cannot batch) until pc is closed.
func (s *Server) serveUDPEach(ctx context.Context, pc net.PacketConn, uc *net.UDPConn, workers int) error {
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- s.udpLoop(ctx, pc, uc)
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// Buffer sizes of the UDP workers: a request longer than udpReadLen is
// truncated (BEP 41 options beyond it are lost); udpReplyCap holds the
// largest answer, 20 + 74*18 bytes.
const (
	udpReadLen  = 2048
	udpReplyCap = 2048
)

// udpLoop answers packets one at a time until pc is closed.
func (s *Server) udpLoop(ctx context.Context, pc net.PacketConn, uc *net.UDPConn) error {
	in := make([]byte, udpReadLen)
	sc := &scratch{body: make([]byte, 0, udpReplyCap)}
	for {
		var n int
		var from netip.AddrPort
		var err error
		if uc != nil {
			n, from, err = uc.ReadFromUDPAddrPort(in)
		} else {
			var a net.Addr
			n, a, err = pc.ReadFrom(in)
			if ua, ok := a.(*net.UDPAddr); ok {
				from = ua.AddrPort()
			}
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		out := s.handleUDP(in[:n], from, sc)
		if len(out) == 0 {
			continue
		}
		if uc != nil {
			_, err = uc.WriteToUDPAddrPort(out, from)
		} else {
			_, err = pc.WriteTo(out, net.UDPAddrFromAddrPort(from))
		}
		if err != nil {
			s.log.Debug("tracker: udp reply", "to", from, "err", err)
		}
	}
}

// handleUDP answers one packet; nil means no answer.
func (s *Server) handleUDP(pkt []byte, from netip.AddrPort, sc *scratch) []byte {
	return s.handleUDPAt(pkt, from, s.cfg.Now(), sc)
}

// handleUDPAt is handleUDP at time t.
func (s *Server) handleUDPAt(pkt []byte, from netip.AddrPort, t time.Time, sc *scratch) []byte {
	now := t.Unix()
	// The connection id is checked before the rest, so that only clients
	// that proved their address get more than this one short answer. To
	// an unproven address (the source may be forged) no answer is larger
	// than the request, so the tracker cannot amplify a reflection attack.
	if len(pkt) >= udpHeaderLen && binary.BigEndian.Uint32(pkt[8:]) != udpConnect &&
		!s.ids.valid(now, from, binary.BigEndian.Uint64(pkt)) {
		s.m.errors.WithLabelValues("udp_connection_id").Inc()
		return noLarger(pkt, appendUDPError(sc.body[:0], binary.BigEndian.Uint32(pkt[12:]), "bad or expired connection id"))
	}
	r, err := parseUDPRequest(pkt)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("tracker: udp packet", "from", from, "action", r.action, "len", len(pkt), "err", err)
	}
	if err != nil {
		var pe *udpPacketError
		if errors.As(err, &pe) && pe.drop {
			s.m.errors.WithLabelValues("udp_dropped").Inc()
			return nil
		}
		s.m.errors.WithLabelValues("bad_request").Inc()
		return appendUDPError(sc.body[:0], r.tid, err.Error())
	}
	if r.action == udpConnect {
		s.m.connectUDP.Inc()
		b := sc.body[:0]
		b = binary.BigEndian.AppendUint32(b, udpConnect)
		b = binary.BigEndian.AppendUint32(b, r.tid)
		return noLarger(pkt, binary.BigEndian.AppendUint64(b, s.ids.issue(now, from)))
	}
	switch r.action {
	case udpAnnounce:
		user, err := s.authorize([]byte(passkeyFromPath(string(r.urlData))))
		if s.cfg.Mode != ModePrivate {
			user, err = nil, nil // open trackers ignore the URL path
		}
		if err != nil {
			s.m.errors.WithLabelValues(accessKind(err)).Inc()
			return appendUDPError(sc.body[:0], r.tid, err.Error())
		}
		want := wantV4
		if !from.Addr().Unmap().Is4() {
			want = wantV6
		}
		a := &r.announce
		a.numWant = min(a.numWant, udpMaxPeers)
		if a.numWant < 0 {
			a.numWant = min(s.cfg.NumWant, udpMaxPeers)
		}
		complete, incomplete, err := s.announce(a, from.Addr(), user, want, s.clockAt(t), &sc.peers)
		if err != nil {
			s.m.errors.WithLabelValues(errKind(err)).Inc()
			return appendUDPError(sc.body[:0], r.tid, err.Error())
		}
		s.m.announceUDP.Inc()
		b := sc.body[:0]
		b = binary.BigEndian.AppendUint32(b, udpAnnounce)
		b = binary.BigEndian.AppendUint32(b, r.tid)
		b = binary.BigEndian.AppendUint32(b, uint32(min(s.cfg.Interval.seconds(), math.MaxInt32)))
		b = binary.BigEndian.AppendUint32(b, clamp32(incomplete))
		b = binary.BigEndian.AppendUint32(b, clamp32(complete))
		// One family only: the one the request came from.
		for off := 0; off < len(sc.peers.v4); off += v4Stride {
			b = append(b, sc.peers.v4[off+idLen:off+idLen+v4AddrLen]...)
		}
		for off := 0; off < len(sc.peers.v6); off += v6Stride {
			b = append(b, sc.peers.v6[off+idLen:off+idLen+v6AddrLen]...)
		}
		return b
	case udpScrape:
		// BEP 41 gives scrapes no URL data, so a private tracker cannot
		// check a passkey here: it refuses them (HTTP scrapes carry one).
		if s.cfg.Mode == ModePrivate {
			s.m.errors.WithLabelValues("access").Inc()
			return appendUDPError(sc.body[:0], r.tid, errPrivateScrape.Error())
		}
		stats, _, err := s.scrapeMany(r.hashes)
		if err != nil {
			s.m.errors.WithLabelValues("store").Inc()
			return appendUDPError(sc.body[:0], r.tid, err.Error())
		}
		s.m.scrapeUDP.Inc()
		b := sc.body[:0]
		b = binary.BigEndian.AppendUint32(b, udpScrape)
		b = binary.BigEndian.AppendUint32(b, r.tid)
		for _, st := range stats {
			b = binary.BigEndian.AppendUint32(b, clamp32(st.complete))
			b = binary.BigEndian.AppendUint32(b, uint32(min(st.downloaded, math.MaxInt32)))
			b = binary.BigEndian.AppendUint32(b, clamp32(st.incomplete))
		}
		return b
	}
	return nil
}

// noLarger returns reply, or nil if it is larger than the request pkt.
func noLarger(pkt, reply []byte) []byte {
	if len(reply) > len(pkt) {
		return nil
	}
	return reply
}

func clamp32(n int) uint32 { return uint32(min(max(n, 0), math.MaxInt32)) }

func appendUDPError(b []byte, tid uint32, msg string) []byte {
	b = binary.BigEndian.AppendUint32(b, udpError)
	b = binary.BigEndian.AppendUint32(b, tid)
	return append(b, msg...)
}
