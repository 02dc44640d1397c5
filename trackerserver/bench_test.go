package trackerserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"testing"
)

// BenchmarkPeerMemory reports the live heap per peer with 100k IPv4 peers
// over 10k torrents (as bench/tracker loads), after a GC, so without the
// collector's slack that RSS includes.
func BenchmarkPeerMemory(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, err := New(Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		const torrents, peers = 10_000, 100_000
		var out peerList
		for i := range peers {
			var p announceParams
			binary.BigEndian.PutUint32(p.infoHash[:], uint32(i%torrents)*2654435761)
			binary.BigEndian.PutUint32(p.peerID[:], uint32(i))
			p.port, p.left, p.numWant = uint16(1024+i/torrents), int64(i%3), 0
			ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			if _, _, err = s.announce(&p, ip, nil, wantV4, s.clock(), &out); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/peers, "heap-bytes/peer")
		runtime.KeepAlive(s)
	}
}

// BenchmarkHTTPAnnounceParse measures query parsing alone.
func BenchmarkHTTPAnnounceParse(b *testing.B) {
	q := []byte("info_hash=" + goodHash + "&peer_id=" + goodPeer + "&port=6881&uploaded=0&downloaded=0&left=10&event=started&compact=1&numwant=50&key=abc")
	b.ReportAllocs()
	for range b.N {
		if _, err := parseAnnounceQuery(q); err != nil {
			b.Fatal(err)
		}
	}
}

// benchServer is a tracker filled like bench/tracker's: 100k IPv4 peers
// over 10k torrents, a third of them seeders.
func benchServer(b *testing.B) (*Server, [][20]byte) {
	s, err := New(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	const torrents, peers = 10_000, 100_000
	hashes := make([][20]byte, torrents)
	for i := range hashes {
		binary.BigEndian.PutUint32(hashes[i][:], uint32(i)*2654435761)
		binary.BigEndian.PutUint32(hashes[i][16:], uint32(i))
	}
	var out peerList
	for i := range peers {
		var p announceParams
		p.infoHash = hashes[i%torrents]
		binary.BigEndian.PutUint32(p.peerID[:], uint32(i))
		p.port, p.left, p.numWant = uint16(1024+i/torrents), int64(i%3), 0
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if _, _, err := s.announce(&p, ip, nil, wantV4, s.clock(), &out); err != nil {
			b.Fatal(err)
		}
	}
	return s, hashes
}

// BenchmarkUDPAnnounce measures one BEP 15 announce through handleUDP
// (connection id check, parsing, the swarm update and the reply), without
// the socket.
func BenchmarkUDPAnnounce(b *testing.B) {
	s, hashes := benchServer(b)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	cid := s.ids.issue(s.cfg.Now().Unix(), from)
	pkt := make([]byte, udpAnnounceLen)
	binary.BigEndian.PutUint64(pkt, cid)
	binary.BigEndian.PutUint32(pkt[8:], udpAnnounce)
	binary.BigEndian.PutUint32(pkt[92:], 50)
	binary.BigEndian.PutUint16(pkt[96:], 6881)
	sc := &scratch{body: make([]byte, 0, 2048)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		copy(pkt[16:], hashes[i%len(hashes)][:])
		binary.BigEndian.PutUint32(pkt[36:], uint32(i%100_000))
		if out := s.handleUDP(pkt, from, sc); len(out) < 20 || binary.BigEndian.Uint32(out) != udpAnnounce {
			b.Fatalf("reply %q", out)
		}
	}
}

// BenchmarkHTTPAnnounce measures one announce through the HTTP handler,
// without the socket.
func BenchmarkHTTPAnnounce(b *testing.B) {
	s, hashes := benchServer(b)
	h := s.Handler()
	urls := make([]string, 1024)
	for i := range urls {
		urls[i] = "/announce?info_hash=" + url.QueryEscape(string(hashes[i*7%len(hashes)][:])) + "&peer_id=-BN0001-" +
			fmt.Sprintf("%012d", i) + "&port=6881&uploaded=0&downloaded=0&left=100&compact=1&numwant=50"
	}
	reqs := make([]*http.Request, len(urls))
	for i, u := range urls {
		reqs[i] = httptest.NewRequest("GET", u, nil)
	}
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		h.ServeHTTP(w, reqs[i%len(reqs)])
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the handler rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// TestAnnounceBodyAllocs holds the HTTP announce path (query parsing, the
// swarm update, the reply) to no allocation: at tens of thousands of
// announces a second, garbage makes the collector run several times a
// second, and its assists land on requests.
func TestAnnounceBodyAllocs(t *testing.T) {
	s, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := &scratch{}
	ip := netip.MustParseAddr("127.0.0.1")
	queries := make([][]byte, 16)
	for i := range queries {
		queries[i] = fmt.Appendf(nil, "info_hash=%s&peer_id=-BN0001-%012d&port=6881&uploaded=0&downloaded=0&left=%d&compact=1&numwant=50&key=%x",
			goodHash, i, i%2, i)
		s.announceBody(sc, queries[i], nil, ip, nil) // the swarm and buffers exist from now on
	}
	i := 0
	if n := testing.AllocsPerRun(200, func() {
		i++
		if b := s.announceBody(sc, queries[i%len(queries)], nil, ip, nil); !bytes.HasPrefix(b, []byte("d8:complete")) {
			t.Fatalf("announce answered %q", b)
		}
	}); n != 0 {
		t.Fatalf("an announce allocates %v times", n)
	}
}
