package trackerless

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/sowerbt/sower/internal/testpeers"
)

// fileSize is the payload of each test: several pieces, quick on loopback.
const fileSize = 6<<20 + 12345

// sowerPeerIDPrefix starts every peer id sower sends (peerwire).
const sowerPeerIDPrefix = "-SW0100-"

// Log lines of sower -v that the tests and the benchmark follow.
var (
	reMetaPeer = regexp.MustCompile(`msg="peer ready"`)
	reMetaDone = regexp.MustCompile(`msg="metadata complete"`)
)

// swarmData writes the test's file and a trackerless torrent of it.
func swarmData(t testing.TB, name string) (dataDir, file, torrent, infoHash string) {
	t.Helper()
	dataDir = t.TempDir()
	file = filepath.Join(dataDir, name)
	testpeers.RandomFile(t, file, fileSize)
	torrent = testpeers.Mktorrent(t, file, "", 256<<10)
	return dataDir, file, torrent, testpeers.InfoHash(t, torrent)
}

func magnetLink(infoHash, name string, peers ...string) string {
	m := "magnet:?xt=urn:btih:" + infoHash + "&dn=" + name
	for _, p := range peers {
		m += "&x.pe=" + p
	}
	return m
}

func waitPeer(t testing.TB, ctx context.Context, p *testpeers.Peer) {
	t.Helper()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLibtorrentDHTSeedSowerMagnet: libtorrent seeds with the DHT on and no
// tracker, joined through a standalone sower DHT node; `sower get MAGNET`
// given only that node finds the seed in the DHT, fetches the metadata and
// the data, byte-identical.
func TestLibtorrentDHTSeedSowerMagnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	boot := startDHTNode(t)
	dataDir, file, torrent, ih := swarmData(t, "lt-dht-seed.bin")
	seed := testpeers.LibtorrentDHTSeed(t, torrent, dataDir, testpeers.DHTOptions{Bootstrap: []string{boot}})
	waitPeer(t, ctx, seed.Peer)
	// Once announced: a lookup before that finds nothing, and sower's
	// retry a second later would show in the timings it logs.
	if _, err := seed.WaitEvent(ctx, "dht-reply"); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	port := testpeers.FreePort(t)
	get := startSower(t, "get", nil, "get", "-q", "--port", strconv.Itoa(port), "--dht-bootstrap", boot, "-o", out,
		magnetLink(ih, "lt-dht-seed.bin"))
	if err := get.Wait(ctx); err != nil {
		t.Fatalf("sower get: %v", err)
	}
	testpeers.SameTree(t, file, filepath.Join(out, filepath.Base(file)))
	peer, _ := when(get, reMetaPeer)
	meta, _ := when(get, reMetaDone)
	t.Logf("sower: first metadata peer after %v, metadata after %v (from process start)", peer, meta)
}

// TestSowerSeedLibtorrentMagnet: sower seeds a torrent with no tracker,
// joined to the DHT through the standalone node, and libtorrent, given only
// the magnet link and the same bootstrap node, finds sower in the DHT
// (no add_peer/connect_peer: discovery on loopback works), fetches the
// metadata from it with ut_metadata, then the data.
func TestSowerSeedLibtorrentMagnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	boot := startDHTNode(t)
	dataDir, file, torrent, ih := swarmData(t, "sower-dht-seed.bin")
	port := testpeers.FreePort(t)
	seed := startSower(t, "seed", nil, "seed", "-q", "--port", strconv.Itoa(port), "--dht-bootstrap", boot, torrent, dataDir)
	// The seed announces once its data is verified; libtorrent's lookups
	// repeat, so it may start at once.
	out := t.TempDir()
	get := testpeers.LibtorrentDHTGet(t, magnetLink(ih, "sower-dht-seed.bin"), out, testpeers.DHTOptions{Bootstrap: []string{boot}})
	if err := get.Wait(ctx); err != nil {
		t.Fatalf("%v (sower seed running: %v)", err, seed.Err() == nil)
	}
	testpeers.SameTree(t, file, filepath.Join(out, filepath.Base(file)))
	// The metadata and the data can only have come from sower: it is the
	// only peer, and libtorrent saw its peer id.
	if !sawSower(get) {
		t.Fatalf("libtorrent never connected to sower; peers seen: %v", get.PeersSeen())
	}
	meta, _ := get.Event("metadata")
	peer, _ := get.Event("first-peer")
	t.Logf("libtorrent: first peer after %v, metadata after %v (from add_torrent)", peer, meta)
}

// TestSowerOverIPv6DHT: a private DHT on ::1 only (BEP 32). `sower seed`
// and `sower get MAGNET`, bootstrapped through a standalone node on [::1],
// have no IPv4 DHT to speak of, no tracker and no peer in the link: the
// download can only complete if the seed announced through its IPv6 DHT
// node and the downloader's lookup went through its own.
func TestSowerOverIPv6DHT(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	boot := startDHTNodeAt(t, "[::1]:0")
	dataDir, file, torrent, ih := swarmData(t, "v6.bin")
	seed := startSower(t, "seed", nil, "seed", "-q", "--port", strconv.Itoa(testpeers.FreePort(t)), "--dht-bootstrap", boot, torrent, dataDir)
	out := t.TempDir()
	get := startSower(t, "get", nil, "get", "-q", "--port", strconv.Itoa(testpeers.FreePort(t)), "--dht-bootstrap", boot, "-o", out,
		magnetLink(ih, "v6.bin"))
	if err := get.Wait(ctx); err != nil {
		t.Fatalf("sower get: %v (sower seed running: %v)", err, seed.Err() == nil)
	}
	testpeers.SameTree(t, file, filepath.Join(out, filepath.Base(file)))
	peer, _ := when(get, reMetaPeer)
	t.Logf("sower: first metadata peer after %v (from process start)", peer)
}

// TestSowerMagnetXPE: `sower get MAGNET&x.pe=...` with the DHT off fetches
// the metadata and the data from a libtorrent seed that has neither DHT
// nor tracker.
func TestSowerMagnetXPE(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	dataDir, file, torrent, ih := swarmData(t, "xpe.bin")
	seed := testpeers.LibtorrentDHTSeed(t, torrent, dataDir, testpeers.DHTOptions{NoDHT: true})
	waitPeer(t, ctx, seed.Peer)

	out := t.TempDir()
	get := startSower(t, "get", nil, "get", "-q", "--no-dht", "--port", strconv.Itoa(testpeers.FreePort(t)), "-o", out,
		magnetLink(ih, "xpe.bin", seed.Addr()))
	if err := get.Wait(ctx); err != nil {
		t.Fatalf("sower get: %v", err)
	}
	testpeers.SameTree(t, file, filepath.Join(out, filepath.Base(file)))
	if _, ok := when(get, reMetaDone); !ok {
		t.Fatal("sower did not log the metadata fetch")
	}
}

// TestSowerLearnsPeerByPEX: sower, given only libtorrent seed A (no DHT,
// no tracker), learns from A's ut_pex message of seed B, which A dialled,
// and dials B itself. B has no ut_pex, so no one dials sower: B's address
// can only have come from A's PEX message (libtorrent sends its first one
// about 10 s after the connection).
func TestSowerLearnsPeerByPEX(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	dataDir, _, torrent, _ := swarmData(t, "pex.bin")
	// B has no ut_pex: it cannot learn of sower and dial it, which would
	// give sower B's address another way (its extension handshake).
	b := testpeers.LibtorrentDHTSeed(t, torrent, dataDir, testpeers.DHTOptions{NoDHT: true, NoPEX: true, KeepSeedConnections: true})
	waitPeer(t, ctx, b.Peer)
	a := testpeers.LibtorrentDHTSeed(t, torrent, dataDir,
		testpeers.DHTOptions{NoDHT: true, KeepSeedConnections: true, Peers: []string{b.Addr()}})
	waitPeer(t, ctx, a.Peer)

	out := t.TempDir()
	port := testpeers.FreePort(t)
	// Slowed down so that sower is still a leecher, and connected to A,
	// when A's PEX message comes (a seed drops another seed).
	get := startSower(t, "get", nil, "get", "-q", "--seed", "--no-dht", "--port", strconv.Itoa(port),
		"--download-limit", "40KiB", "--peer", a.Addr(), "-o", out, torrent)
	// Sower dialling B proves it learnt B: nothing else names B to it.
	reB := regexp.MustCompile(fmt.Sprintf(`msg="peer connected" .*peer=127\.0\.0\.1:%d .*outgoing=true`, b.Port))
	get.WaitLog(t, ctx, reB)
	if !sawSower(b) {
		t.Fatalf("libtorrent B did not see sower's peer id; peers seen: %v", b.PeersSeen())
	}
	if matches(get, regexp.MustCompile(`msg="peer connected" .*outgoing=false`)) {
		t.Fatal("a peer dialled sower: B's address may have come from its handshake rather than PEX")
	}
	at, _ := when(get, reB)
	t.Logf("sower dialled the PEX-learnt peer %v after starting", at)
}

// sawSower reports whether p had a connection with sower's peer id.
func sawSower(p *testpeers.DHTPeer) bool {
	for _, sp := range p.PeersSeen() {
		if len(sp.PeerID) >= len(sowerPeerIDPrefix) && string(sp.PeerID[:len(sowerPeerIDPrefix)]) == sowerPeerIDPrefix {
			return true
		}
	}
	return false
}
