package trackerserver

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/tracker"
)

// Interop tests: real BitTorrent programs find each other through Sower's
// tracker and complete a transfer, and the scrape counts match what
// happened. They skip when a program is missing (fail under
// TESTPEERS_REQUIRE=1).

const interopWait = 90 * time.Second

// interopTorrent makes a small file and its torrent announcing to url.
func interopTorrent(t *testing.T, name, url string) (torrent, dataDir string, ih [20]byte) {
	dataDir = t.TempDir()
	testpeers.RandomFile(t, filepath.Join(dataDir, name), 2<<20)
	torrent = testpeers.Mktorrent(t, filepath.Join(dataDir, name), url, 64<<10)
	b, err := hex.DecodeString(testpeers.InfoHash(t, torrent))
	if err != nil {
		t.Fatal(err)
	}
	return torrent, dataDir, [20]byte(b)
}

// waitScrape polls the tracker until the torrent's counts are want.
func waitScrape(t *testing.T, url string, ih [20]byte, want tracker.ScrapeStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	c := testClient()
	var got tracker.ScrapeStats
	for {
		st, err := c.Scrape(ctx, url, [][20]byte{ih})
		if err == nil {
			if got = st[ih]; got == want {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("scrape counts %+v (last error %v), want %+v", got, err, want)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func waitPeer(t *testing.T, p *testpeers.Peer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
}

func TestInteropAria2SeedLibtorrentGetHTTP(t *testing.T) {
	rt := start(t, Config{Interval: Duration(5 * time.Second), ExpireFactor: 100}, "4")
	torrent, dataDir, ih := interopTorrent(t, "aria2-lt.bin", rt.httpURL)
	seed := testpeers.Aria2Seed(t, torrent, dataDir)
	waitPeer(t, seed)
	waitScrape(t, rt.httpURL, ih, tracker.ScrapeStats{Complete: 1})
	out := t.TempDir()
	get := testpeers.LibtorrentGet(t, torrent, out) // peers only from the tracker
	waitPeer(t, get)
	testpeers.SameTree(t, filepath.Join(dataDir, "aria2-lt.bin"), filepath.Join(out, "aria2-lt.bin"))
	// libtorrent announces "completed" and keeps seeding.
	waitScrape(t, rt.httpURL, ih, tracker.ScrapeStats{Complete: 2, Downloaded: 1})
}

// aria2 speaks UDP to trackers only through its DHT socket, which the
// test peers run without, so the UDP test is libtorrent on both sides.
func TestInteropLibtorrentUDP(t *testing.T) {
	rt := start(t, Config{Interval: Duration(5 * time.Second), ExpireFactor: 100}, "4")
	torrent, dataDir, ih := interopTorrent(t, "lt-udp.bin", rt.udpURL)
	seed := testpeers.LibtorrentSeed(t, torrent, dataDir)
	waitPeer(t, seed)
	waitScrape(t, rt.udpURL, ih, tracker.ScrapeStats{Complete: 1})
	out := t.TempDir()
	get := testpeers.LibtorrentGet(t, torrent, out)
	waitPeer(t, get)
	testpeers.SameTree(t, filepath.Join(dataDir, "lt-udp.bin"), filepath.Join(out, "lt-udp.bin"))
	waitScrape(t, rt.udpURL, ih, tracker.ScrapeStats{Complete: 2, Downloaded: 1})
}

func TestInteropLibtorrentSeedTransmissionGet(t *testing.T) {
	rt := start(t, Config{Interval: Duration(5 * time.Second), ExpireFactor: 100}, "4")
	torrent, dataDir, ih := interopTorrent(t, "lt-tr.bin", rt.httpURL)
	out := t.TempDir()
	// Transmission never dials loopback peers, so it announces first and
	// the seed dials the address the tracker gives it.
	get := testpeers.TransmissionGet(t, torrent, out)
	waitScrape(t, rt.httpURL, ih, tracker.ScrapeStats{Incomplete: 1})
	seed := testpeers.LibtorrentSeed(t, torrent, dataDir)
	waitPeer(t, seed)
	waitPeer(t, get)
	testpeers.SameTree(t, filepath.Join(dataDir, "lt-tr.bin"), filepath.Join(out, "lt-tr.bin"))
	waitScrape(t, rt.httpURL, ih, tracker.ScrapeStats{Complete: 2, Downloaded: 1})
}
