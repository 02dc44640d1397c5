package interop

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sowerbt/sower/internal/sowertest"
	"github.com/sowerbt/sower/internal/testpeers"
)

// TestMixedSwarm has one real seeder (libtorrent) and two leechers at the
// same time, sower and aria2. The seeder is reachable only through a
// throttling proxy per leecher, so neither leecher can simply take
// everything from it before the other starts: both must end with the exact
// data, sower must have met aria2, and the seed must have sent clearly less
// than two copies, which shows that the leechers traded pieces.
func TestMixedSwarm(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "swarm")
	var size int64
	for _, f := range []struct {
		name string
		size int64
	}{{"one.bin", 9<<20 + 4321}, {"two.bin", 15<<20 + 99}, {"tiny.txt", 10}} {
		testpeers.RandomFile(t, filepath.Join(src, f.name), f.size)
		size += f.size
	}
	torrent := testpeers.Mktorrent(t, src, "", pieceLen)
	seed := testpeers.LibtorrentSeed(t, torrent, seedDir(t, src))
	waitPeer(t, seed, seedReadyWait)
	toSower := startThrottle(t, seed.Addr(), 3<<20)
	toAria := startThrottle(t, seed.Addr(), 3<<20)

	sowerOut, ariaOut := t.TempDir(), t.TempDir()
	sowerPort := testpeers.FreePort(t)
	get := startSower(t, "get", "get", "-o", sowerOut, "--port", strconv.Itoa(sowerPort), "--quiet", "--no-dht",
		"--peer", toSower.Addr(), torrent)
	aria := testpeers.Aria2Get(t, torrent, ariaOut, toAria.Addr(), "127.0.0.1:"+strconv.Itoa(sowerPort))
	get.ExitOK(t, transferWait)
	waitPeer(t, aria, transferWait)
	testpeers.SameTree(t, src, filepath.Join(sowerOut, "swarm"))
	testpeers.SameTree(t, src, filepath.Join(ariaOut, "swarm"))

	if !sowertest.HasLine(get.Output(t), `msg="peer connected"`, "aria2") {
		t.Errorf("sower never connected to the aria2 leecher")
	}
	fromSeed := toSower.Downloaded() + toAria.Downloaded()
	t.Logf("seed sent %d bytes to sower, %d to aria2 (file %d)", toSower.Downloaded(), toAria.Downloaded(), size)
	if fromSeed > 2*size*9/10 {
		t.Errorf("seed sent %d bytes for two leechers of %d: they hardly traded", fromSeed, size)
	}
}
