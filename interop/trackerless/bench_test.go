package trackerless

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
)

// BenchmarkMagnet measures, for a magnet link on loopback, the time to
// the first peer and to the metadata, for `sower get` and for libtorrent
// in the same run against the same libtorrent seed: through a private DHT
// bootstrapped by a standalone sower node (dht), and with the seed named
// in the link's x.pe and the DHT off (xpe). Each iteration is a fresh
// downloader process. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench BenchmarkMagnet -benchtime 5x ./interop/trackerless
//
// Clocks: sower's start at the exec of the process and its first peer is
// the first peer that finished the BitTorrent and extension handshakes
// (log "peer ready"); libtorrent's start at add_torrent, in a session
// already running, and its first peer is the first connection attempt to a
// peer (peer_connect_alert), a millisecond or so earlier than a handshake
// on loopback. Both favour libtorrent slightly.
func BenchmarkMagnet(b *testing.B) {
	ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
	defer cancel()
	boot := startDHTNode(b)
	dataDir, _, torrent, ih := swarmData(b, "bench.bin")
	seed := testpeers.LibtorrentDHTSeed(b, torrent, dataDir, testpeers.DHTOptions{Bootstrap: []string{boot}})
	waitPeer(b, ctx, seed.Peer)
	if _, err := seed.WaitEvent(ctx, "dht-reply"); err != nil {
		b.Fatal(err)
	}

	for _, mode := range []string{"dht", "xpe"} {
		link := magnetLink(ih, "bench.bin")
		sowerNet := []string{"--dht-bootstrap", boot}
		ltOpts := testpeers.DHTOptions{Bootstrap: []string{boot}}
		if mode == "xpe" {
			link = magnetLink(ih, "bench.bin", seed.Addr())
			sowerNet = []string{"--no-dht"}
			ltOpts = testpeers.DHTOptions{NoDHT: true}
		}
		b.Run(mode+"/sower", func(b *testing.B) {
			var peer, meta time.Duration
			for b.Loop() {
				args := append([]string{"get", "-q", "--port", strconv.Itoa(testpeers.FreePort(b)), "-o", b.TempDir()}, sowerNet...)
				get := startSower(b, "get", nil, append(args, link)...)
				if err := get.Wait(ctx); err != nil {
					b.Fatalf("sower get: %v\n%s", err, get.Tail(20))
				}
				p, ok1 := when(get, reMetaPeer)
				m, ok2 := when(get, reMetaDone)
				if !ok1 || !ok2 {
					b.Fatalf("sower get did not log its metadata fetch:\n%s", get.Tail(20))
				}
				peer += p
				meta += m
			}
			report(b, peer, meta)
		})
		b.Run(mode+"/libtorrent", func(b *testing.B) {
			var peer, meta time.Duration
			for b.Loop() {
				get := testpeers.LibtorrentDHTGet(b, link, b.TempDir(), ltOpts)
				m, err := get.WaitEvent(ctx, "metadata")
				if err != nil {
					b.Fatal(err)
				}
				p, ok := get.Event("first-peer")
				if !ok {
					b.Fatal("libtorrent has the metadata but reported no first peer")
				}
				get.Stop()
				peer += p
				meta += m
			}
			report(b, peer, meta)
		})
	}
}

// report adds the mean times per download as the benchmark's metrics.
func report(b *testing.B, peer, meta time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(peer.Microseconds())/1e3/n, "ms-first-peer")
	b.ReportMetric(float64(meta.Microseconds())/1e3/n, "ms-metadata")
}
