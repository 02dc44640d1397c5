package interop

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sowerbt/sower/internal/testpeers"
)

// TestMixedSwarm has one real seeder (libtorrent) and two leechers at the
// same time, sower and aria2, all introduced by opentracker: both must end
// with the exact data, and sower must have met the other leecher, so that
// the two really shared a swarm rather than each talking only to the seed.
func TestMixedSwarm(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "swarm")
	for _, f := range []struct {
		name string
		size int64
	}{{"one.bin", 9<<20 + 4321}, {"two.bin", 15<<20 + 99}, {"tiny.txt", 10}} {
		testpeers.RandomFile(t, filepath.Join(src, f.name), f.size)
	}
	torrent := trackedTorrent(t, src)
	seed := testpeers.LibtorrentSeed(t, torrent, seedDir(t, src))
	waitPeer(t, seed, seedReadyWait)

	sowerOut, ariaOut := t.TempDir(), t.TempDir()
	get := startSower(t, "get", "get", "-o", sowerOut, "--port", strconv.Itoa(testpeers.FreePort(t)), "--quiet", torrent)
	aria := testpeers.Aria2Get(t, torrent, ariaOut)
	get.mustExitOK(t, transferWait)
	waitPeer(t, aria, transferWait)
	testpeers.SameTree(t, src, filepath.Join(sowerOut, "swarm"))
	testpeers.SameTree(t, src, filepath.Join(ariaOut, "swarm"))

	log := get.output(t)
	if !hasLine(log, `msg="peer connected"`, "aria2") {
		t.Errorf("sower never connected to the aria2 leecher")
	}
	if !hasLine(log, `msg="peer connected"`, "libtorrent") && !hasLine(log, `msg="peer connected"`, "Libtorrent") {
		t.Errorf("sower never connected to the libtorrent seed")
	}
}
