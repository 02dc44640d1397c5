package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpTestServer is a scripted UDP tracker on the loopback interface.
// handle is called for every received packet and returns the packets to
// send back (none drops the request).
type udpTestServer struct {
	conn   *net.UDPConn
	mu     sync.Mutex
	got    [][]byte
	handle func(n int, pkt []byte) [][]byte
}

func startUDPServer(t *testing.T, network string, handle func(n int, pkt []byte) [][]byte) *udpTestServer {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "udp6" {
		addr = "[::1]:0"
	}
	la, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	conn, err := net.ListenUDP(network, la)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	s := &udpTestServer{conn: conn, handle: handle}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			// The test's cleanup closes conn; the deadline bounds the loop
			// even if a test forgets.
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pkt := append([]byte(nil), buf[:n]...)
			s.mu.Lock()
			s.got = append(s.got, pkt)
			idx := len(s.got) - 1
			s.mu.Unlock()
			for _, out := range s.handle(idx, pkt) {
				conn.WriteToUDP(out, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

func (s *udpTestServer) url(suffix string) string {
	return "udp://" + s.conn.LocalAddr().String() + suffix
}

func (s *udpTestServer) packets() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...)
}

// countAction counts received requests of one action. Connect requests
// carry the action at offset 8, like all others.
func (s *udpTestServer) countAction(action uint32) int {
	n := 0
	for _, p := range s.packets() {
		if len(p) >= 12 && binary.BigEndian.Uint32(p[8:]) == action {
			n++
		}
	}
	return n
}

const testConnID = 0x1122334455667788

func connectReply(req []byte) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b[0:], actionConnect)
	copy(b[4:8], req[12:16])
	binary.BigEndian.PutUint64(b[8:], testConnID)
	return b
}

func reqTID(req []byte) []byte { return req[12:16] }

func announceReply(tid []byte, interval, leechers, seeders uint32, peers []byte) []byte {
	b := make([]byte, 20, 20+len(peers))
	binary.BigEndian.PutUint32(b[0:], actionAnnounce)
	copy(b[4:8], tid)
	binary.BigEndian.PutUint32(b[8:], interval)
	binary.BigEndian.PutUint32(b[12:], leechers)
	binary.BigEndian.PutUint32(b[16:], seeders)
	return append(b, peers...)
}

func errorReply(tid []byte, msg string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:], actionError)
	copy(b[4:8], tid)
	return append(b, msg...)
}

// basicUDPHandler answers connects and announces correctly.
func basicUDPHandler(peers []byte) func(int, []byte) [][]byte {
	return func(_ int, pkt []byte) [][]byte {
		if len(pkt) < 16 {
			return nil
		}
		switch binary.BigEndian.Uint32(pkt[8:]) {
		case actionConnect:
			if binary.BigEndian.Uint64(pkt) != udpProtocolID {
				return nil
			}
			return [][]byte{connectReply(pkt)}
		case actionAnnounce:
			if binary.BigEndian.Uint64(pkt) != testConnID {
				return [][]byte{errorReply(reqTID(pkt), "bad connection id")}
			}
			return [][]byte{announceReply(reqTID(pkt), 1800, 7, 3, peers)}
		}
		return nil
	}
}

func testClient() *Client {
	return &Client{UDPRetransmit: 50 * time.Millisecond, UDPMaxAttempts: 4}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUDPAnnounce(t *testing.T) {
	peers := []byte{10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0x00, 0x50}
	srv := startUDPServer(t, "udp4", basicUDPHandler(peers))
	c := testClient()
	fake := time.Now()
	var clockMu sync.Mutex
	c.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return fake }

	req := AnnounceRequest{
		InfoHash: [20]byte{1, 2, 3, 19: 0xff}, PeerID: [20]byte{'-', 'S', 'W', 19: 'z'},
		Port: 6881, Uploaded: 100, Downloaded: 200, Left: 300,
		Event: Started, NumWant: 50, Key: 0xdeadbeef,
	}
	resp, err := c.Announce(ctxT(t), srv.url("/announce?passkey=abc"), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Interval != 1800*time.Second || resp.Incomplete != 7 || resp.Complete != 3 {
		t.Errorf("response counters: %+v", resp)
	}
	want := []Peer{
		{Addr: netip.MustParseAddrPort("10.0.0.1:6881")},
		{Addr: netip.MustParseAddrPort("192.168.1.2:80")},
	}
	if len(resp.Peers) != 2 || resp.Peers[0] != want[0] || resp.Peers[1] != want[1] {
		t.Errorf("peers = %v, want %v", resp.Peers, want)
	}

	pk := srv.packets()
	if len(pk) != 2 {
		t.Fatalf("server got %d packets, want connect+announce", len(pk))
	}
	a := pk[1]
	if len(a) < 98 {
		t.Fatalf("announce packet of %d bytes", len(a))
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"connection id", binary.BigEndian.Uint64(a[0:]), testConnID},
		{"action", uint64(binary.BigEndian.Uint32(a[8:])), actionAnnounce},
		{"downloaded", binary.BigEndian.Uint64(a[56:]), 200},
		{"left", binary.BigEndian.Uint64(a[64:]), 300},
		{"uploaded", binary.BigEndian.Uint64(a[72:]), 100},
		{"event", uint64(binary.BigEndian.Uint32(a[80:])), 2},
		{"ip", uint64(binary.BigEndian.Uint32(a[84:])), 0},
		{"key", uint64(binary.BigEndian.Uint32(a[88:])), 0xdeadbeef},
		{"num_want", uint64(binary.BigEndian.Uint32(a[92:])), 50},
		{"port", uint64(binary.BigEndian.Uint16(a[96:])), 6881},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %#x, want %#x", ch.name, ch.got, ch.want)
		}
	}
	if [20]byte(a[16:36]) != req.InfoHash || [20]byte(a[36:56]) != req.PeerID {
		t.Errorf("info hash / peer id not copied verbatim")
	}
	// BEP 41 URLData option with the path and query.
	if got, want := string(a[98:]), "\x02\x15/announce?passkey=abc"; got != want {
		t.Errorf("options = %q, want %q", got, want)
	}

	// Within a minute the connection ID is reused.
	req.Event, req.NumWant = None, -1
	if _, err := c.Announce(ctxT(t), srv.url("/announce?passkey=abc"), req); err != nil {
		t.Fatal(err)
	}
	if n := srv.countAction(actionConnect); n != 1 {
		t.Errorf("connects after second announce = %d, want 1 (cached ID)", n)
	}
	last := srv.packets()[len(srv.packets())-1]
	if ev, nw := binary.BigEndian.Uint32(last[80:]), int32(binary.BigEndian.Uint32(last[92:])); ev != 0 || nw != -1 {
		t.Errorf("regular announce event=%d num_want=%d, want 0 and -1", ev, nw)
	}

	// After a minute it has expired and a new connect is made.
	clockMu.Lock()
	fake = fake.Add(61 * time.Second)
	clockMu.Unlock()
	if _, err := c.Announce(ctxT(t), srv.url("/announce?passkey=abc"), req); err != nil {
		t.Fatal(err)
	}
	if n := srv.countAction(actionConnect); n != 2 {
		t.Errorf("connects after expiry = %d, want 2", n)
	}
}

func TestUDPAnnounceNoURLData(t *testing.T) {
	srv := startUDPServer(t, "udp4", basicUDPHandler(nil))
	if _, err := testClient().Announce(ctxT(t), srv.url(""), AnnounceRequest{NumWant: -1}); err != nil {
		t.Fatal(err)
	}
	pk := srv.packets()
	if len(pk[len(pk)-1]) != 98 {
		t.Errorf("announce without path is %d bytes, want 98", len(pk[len(pk)-1]))
	}
}

func TestUDPAnnounceIPv6(t *testing.T) {
	peer6 := netip.MustParseAddrPort("[2001:db8::1]:51413")
	a16 := peer6.Addr().As16()
	peers := append(a16[:], 0xc8, 0xd5)
	srv := startUDPServer(t, "udp6", basicUDPHandler(peers))
	resp, err := testClient().Announce(ctxT(t), srv.url("/announce"), AnnounceRequest{NumWant: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 1 || resp.Peers[0].Addr != peer6 {
		t.Errorf("peers = %v, want [%v]", resp.Peers, peer6)
	}
}

func TestUDPScrape(t *testing.T) {
	h1, h2 := [20]byte{1}, [20]byte{2}
	srv := startUDPServer(t, "udp4", func(_ int, pkt []byte) [][]byte {
		switch binary.BigEndian.Uint32(pkt[8:]) {
		case actionConnect:
			return [][]byte{connectReply(pkt)}
		case actionScrape:
			if len(pkt) != 16+40 || [20]byte(pkt[16:36]) != h1 || [20]byte(pkt[36:56]) != h2 {
				return [][]byte{errorReply(reqTID(pkt), "bad scrape request")}
			}
			b := make([]byte, 8+24)
			binary.BigEndian.PutUint32(b[0:], actionScrape)
			copy(b[4:8], reqTID(pkt))
			for i, v := range []uint32{5, 50, 6, 1, 2, 3} {
				binary.BigEndian.PutUint32(b[8+4*i:], v)
			}
			return [][]byte{b}
		}
		return nil
	})
	got, err := testClient().Scrape(ctxT(t), srv.url("/announce"), [][20]byte{h1, h2})
	if err != nil {
		t.Fatal(err)
	}
	want := map[[20]byte]ScrapeStats{
		h1: {Complete: 5, Downloaded: 50, Incomplete: 6},
		h2: {Complete: 1, Downloaded: 2, Incomplete: 3},
	}
	if len(got) != 2 || got[h1] != want[h1] || got[h2] != want[h2] {
		t.Errorf("scrape = %v, want %v", got, want)
	}
}

func TestUDPWrongTransactionIgnored(t *testing.T) {
	good := []byte{1, 1, 1, 1, 0, 1}
	srv := startUDPServer(t, "udp4", func(_ int, pkt []byte) [][]byte {
		tid := reqTID(pkt)
		other := []byte{tid[0] ^ 0xff, tid[1], tid[2], tid[3]}
		switch binary.BigEndian.Uint32(pkt[8:]) {
		case actionConnect:
			bogus := connectReply(pkt)
			copy(bogus[4:8], other)
			binary.BigEndian.PutUint64(bogus[8:], 666)
			return [][]byte{bogus, connectReply(pkt)}
		case actionAnnounce:
			if binary.BigEndian.Uint64(pkt) != testConnID {
				return [][]byte{errorReply(tid, "used the spoofed connection id")}
			}
			return [][]byte{
				announceReply(other, 1, 1, 1, []byte{6, 6, 6, 6, 0, 6}),
				{1, 2, 3}, // runt
				announceReply(tid, 60, 0, 0, good),
			}
		}
		return nil
	})
	resp, err := testClient().Announce(ctxT(t), srv.url(""), AnnounceRequest{NumWant: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 1 || resp.Peers[0].Addr != netip.MustParseAddrPort("1.1.1.1:1") || resp.Interval != time.Minute {
		t.Errorf("got %+v, want the answer with the right transaction id", resp)
	}
}

func TestUDPErrorAction(t *testing.T) {
	srv := startUDPServer(t, "udp4", func(_ int, pkt []byte) [][]byte {
		if binary.BigEndian.Uint32(pkt[8:]) == actionConnect {
			return [][]byte{connectReply(pkt)}
		}
		return [][]byte{errorReply(reqTID(pkt), "torrent not registered\x00")}
	})
	c := testClient()
	_, err := c.Announce(ctxT(t), srv.url(""), AnnounceRequest{})
	var fe *FailureError
	if !errors.As(err, &fe) || fe.Reason != "torrent not registered" {
		t.Fatalf("err = %v, want FailureError with the tracker's message", err)
	}
	// The tracker may have rejected our connection ID: it is not reused.
	if _, ok := c.connID(srv.conn.LocalAddr().String()); ok {
		t.Error("connection ID still cached after an error response")
	}
}

func TestUDPRetransmit(t *testing.T) {
	srv := startUDPServer(t, "udp4", func(n int, pkt []byte) [][]byte {
		if n == 0 {
			return nil // first connect lost
		}
		if n == 2 {
			return nil // first announce lost
		}
		return basicUDPHandler(nil)(n, pkt)
	})
	if _, err := testClient().Announce(ctxT(t), srv.url(""), AnnounceRequest{}); err != nil {
		t.Fatal(err)
	}
	if c, a := srv.countAction(actionConnect), srv.countAction(actionAnnounce); c != 2 || a != 2 {
		t.Errorf("server saw %d connects and %d announces, want 2 and 2", c, a)
	}
}

func TestUDPGivesUp(t *testing.T) {
	srv := startUDPServer(t, "udp4", func(int, []byte) [][]byte { return nil })
	c := &Client{UDPRetransmit: 10 * time.Millisecond, UDPMaxAttempts: 3}
	_, err := c.Announce(ctxT(t), srv.url(""), AnnounceRequest{})
	if err == nil || !strings.Contains(err.Error(), "no response after 3 attempts") {
		t.Fatalf("err = %v, want give-up after 3 attempts", err)
	}
	if n := len(srv.packets()); n != 3 {
		t.Errorf("server got %d packets, want 3", n)
	}
}

func TestUDPContextCancel(t *testing.T) {
	srv := startUDPServer(t, "udp4", func(int, []byte) [][]byte { return nil })
	c := &Client{UDPRetransmit: time.Hour}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for len(srv.packets()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := c.Announce(ctx, srv.url(""), AnnounceRequest{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestUDPBadURL(t *testing.T) {
	_, err := testClient().Announce(ctxT(t), "udp://127.0.0.1/announce", AnnounceRequest{})
	if err == nil || !strings.Contains(err.Error(), "no port") {
		t.Errorf("err = %v, want missing-port error", err)
	}
	long := "udp://127.0.0.1:1/" + strings.Repeat("a", udpMaxURLData)
	if _, err := testClient().Announce(ctxT(t), long, AnnounceRequest{}); err == nil {
		t.Error("oversized URLData accepted")
	}
}

func TestUDPURLDataChunks(t *testing.T) {
	path := "/" + strings.Repeat("p", 300)
	b := udpAnnounceRequest(1, 2, AnnounceRequest{}, path)
	opts := b[98:]
	if opts[0] != 2 || opts[1] != 255 || string(opts[2:257]) != path[:255] ||
		opts[257] != 2 || int(opts[258]) != len(path)-255 || string(opts[259:]) != path[255:] {
		t.Errorf("URLData chunks wrong: % x", opts[:4])
	}
}

func TestParseUDPResponse(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		ipv6 bool
		err  string
	}{
		{"runt", []byte{0, 0, 0}, false, "shorter than the 8-byte header"},
		{"short connect", []byte{0, 0, 0, 0, 1, 2, 3, 4, 9}, false, "connect response of 9 bytes"},
		{"short announce", []byte{0, 0, 0, 1, 1, 2, 3, 4, 0, 0}, false, "announce response of 10 bytes"},
		{"partial peer", append(announceReply([]byte{1, 2, 3, 4}, 1, 1, 1, nil), 1, 2, 3), false,
			"udp announce peers at offset 20: length 3 is not a multiple of 6"},
		{"v4 stride on v6", announceReply([]byte{1, 2, 3, 4}, 1, 1, 1, make([]byte, 6)), true, "multiple of 18"},
		{"partial scrape", []byte{0, 0, 0, 2, 1, 2, 3, 4, 0, 0, 0, 1}, false, "4 bytes from offset 8"},
		{"unknown action", []byte{0, 0, 0, 9, 1, 2, 3, 4}, false, "unknown action 9"},
	}
	for _, tt := range tests {
		_, err := parseUDPResponse(tt.pkt, tt.ipv6, discard())
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: err = %v, want containing %q", tt.name, err, tt.err)
		}
	}
	// Undialable peers are skipped, not fatal.
	r, err := parseUDPResponse(announceReply([]byte{1, 2, 3, 4}, 1, 1, 1,
		[]byte{0, 0, 0, 0, 1, 1, 1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 9}), false, discard())
	if err != nil || len(r.Peers) != 1 || r.Peers[0].Addr != netip.MustParseAddrPort("5.6.7.8:9") {
		t.Errorf("skip undialable: %v %v", r, err)
	}
}

func TestUDPPortUnreachable(t *testing.T) {
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	l.Close()
	// With an hour-long retransmission timeout only the ICMP error can end
	// this call, so a dead tracker is given up at once.
	c := &Client{UDPRetransmit: time.Hour}
	_, err = c.Announce(ctxT(t), "udp://"+addr+"/announce", AnnounceRequest{})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a refused error", err)
	}
}
