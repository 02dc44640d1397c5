package testpeers

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// transferWait bounds each small transfer in these tests.
const transferWait = 90 * time.Second

// testSize is the size of the files moved by these tests: several pieces,
// still quick on a loaded machine.
const testSize = 6 << 20

func waitPeer(t *testing.T, p *Peer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// singleFile makes a testSize file named name in a fresh directory and
// returns the directory and the file.
func singleFile(t *testing.T, name string) (dir, file string) {
	dir = t.TempDir()
	file = filepath.Join(dir, name)
	RandomFile(t, file, testSize)
	return dir, file
}

func TestOpentrackerAria2SeedLibtorrentGet(t *testing.T) {
	t.Parallel()
	tr := StartOpentracker(t)
	dataDir, file := singleFile(t, "tracked.bin")
	torrent := Mktorrent(t, file, tr.AnnounceURL, 256<<10)
	ih := InfoHash(t, torrent)

	// The whitelist really is in force until Allow.
	probe := make([]byte, 20)
	copy(probe, mustHex(t, ih))
	reply, err := tr.announce(context.Background(), probe, "started")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(reply, []byte("not authorized")) {
		t.Fatalf("announce before Allow: got %q, want a refusal", reply)
	}
	tr.Allow(t, ih)

	seed := Aria2Seed(t, torrent, dataDir)
	waitPeer(t, seed)
	out := t.TempDir()
	get := LibtorrentGet(t, torrent, out) // no peer given: only the tracker can introduce them
	waitPeer(t, get)
	SameTree(t, file, filepath.Join(out, "tracked.bin"))

	st, err := seed.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Uploaded < testSize {
		t.Errorf("aria2c seed uploaded %d bytes, want at least %d", st.Uploaded, testSize)
	}
	gst, err := get.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gst.Done != testSize || gst.Total != testSize {
		t.Errorf("libtorrent leecher: %v, want done=total=%d", gst, testSize)
	}
}

func TestLibtorrentSeedAria2GetDirect(t *testing.T) {
	t.Parallel()
	// A two-file torrent without trackers: peers are given directly.
	src := filepath.Join(t.TempDir(), "album")
	RandomFile(t, filepath.Join(src, "a.bin"), testSize/2)
	RandomFile(t, filepath.Join(src, "sub", "b.bin"), testSize/2+12345)
	torrent := Mktorrent(t, src, "", 0)

	seed := LibtorrentSeed(t, torrent, filepath.Dir(src))
	waitPeer(t, seed)
	out := t.TempDir()
	get := Aria2Get(t, torrent, out, seed.Addr())
	waitPeer(t, get)
	SameTree(t, src, filepath.Join(out, "album"))
	if err := get.Connect(seed.Addr()); !errors.Is(err, ErrUnsupported) {
		t.Errorf("aria2c Connect: got %v, want ErrUnsupported", err)
	}
}

func TestTransmissionSeedLibtorrentGet(t *testing.T) {
	t.Parallel()
	dataDir, file := singleFile(t, "from-transmission.bin")
	torrent := Mktorrent(t, file, "", 256<<10)

	seed := TransmissionSeed(t, torrent, dataDir)
	waitPeer(t, seed)
	out := t.TempDir()
	get := LibtorrentGet(t, torrent, out, seed.Addr())
	waitPeer(t, get)
	SameTree(t, file, filepath.Join(out, "from-transmission.bin"))

	st, err := seed.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Uploaded < testSize {
		t.Errorf("transmission seed uploaded %d bytes, want at least %d", st.Uploaded, testSize)
	}
}

func TestLibtorrentSeedTransmissionGet(t *testing.T) {
	t.Parallel()
	dataDir, file := singleFile(t, "to-transmission.bin")
	torrent := Mktorrent(t, file, "", 256<<10)

	seed := LibtorrentSeed(t, torrent, dataDir)
	out := t.TempDir()
	get := TransmissionGet(t, torrent, out)
	// Transmission does not dial 127.0.0.1, so the seed dials it.
	if err := seed.Connect(get.Addr()); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, get)
	SameTree(t, file, filepath.Join(out, "to-transmission.bin"))

	seed.Stop()
	if !seed.Exited() {
		t.Error("libtorrent seed still running after Stop")
	}
	if _, err := seed.Stats(context.Background()); err == nil {
		t.Error("Stats of a stopped peer: got no error")
	}
}

func TestSeedWithMissingDataFails(t *testing.T) {
	t.Parallel()
	_, file := singleFile(t, "missing.bin")
	torrent := Mktorrent(t, file, "", 256<<10)
	seed := LibtorrentSeed(t, torrent, t.TempDir()) // the data is not there
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	if err := seed.Wait(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Wait of a seed without data: got %v, want its own error before the deadline", err)
	}
}
