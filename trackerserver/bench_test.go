package trackerserver

import (
	"encoding/binary"
	"net/netip"
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
			if _, _, err = s.announce(&p, ip, nil, wantV4, &out); err != nil {
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
	q := "info_hash=" + goodHash + "&peer_id=" + goodPeer + "&port=6881&uploaded=0&downloaded=0&left=10&event=started&compact=1&numwant=50&key=abc"
	b.ReportAllocs()
	for range b.N {
		if _, err := parseAnnounceQuery(q); err != nil {
			b.Fatal(err)
		}
	}
}
