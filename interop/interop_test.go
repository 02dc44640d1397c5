package interop

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
)

// Bounds for the steps of a transfer. They are generous: on a loaded 2-core
// machine a 64 MiB transfer with Transmission (which unchokes only at its
// next rechoke, up to 10 s) takes well under a minute.
const (
	seedReadyWait = 90 * time.Second
	transferWait  = 2 * time.Minute
)

// pieceLen is the piece length of the test torrents: 256 KiB, mktorrent's
// default and a common size in real swarms.
const pieceLen = 256 << 10

// testData is the content the matrix moves, made once per run: a single
// file and a folder whose files make pieces span file boundaries.
type testData struct {
	single string // a 64 MiB file
	multi  string // a folder of 64 MiB and a bit, with a small and an empty file
}

func makeTestData(t *testing.T) testData {
	t.Helper()
	dir := t.TempDir()
	d := testData{single: filepath.Join(dir, "single.bin"), multi: filepath.Join(dir, "multi")}
	testpeers.RandomFile(t, d.single, 64<<20)
	// Sizes that are not multiples of the piece length, so that pieces
	// straddle files; the small and the empty file sit between big ones.
	for _, f := range []struct {
		name string
		size int64
	}{
		{"a.bin", 20<<20 + 12345},
		{"small.txt", 1000},
		{"empty.dat", 0},
		{"sub/b.bin", 30<<20 + 777},
		{"sub/deeper/c.bin", 14<<20 + 3},
	} {
		testpeers.RandomFile(t, filepath.Join(d.multi, filepath.FromSlash(f.name)), f.size)
	}
	return d
}

// trackedTorrent starts opentracker and makes a torrent of src announcing
// to it.
func trackedTorrent(t *testing.T, src string) string {
	t.Helper()
	tr := testpeers.StartOpentracker(t)
	torrent := testpeers.Mktorrent(t, src, tr.AnnounceURL, pieceLen)
	tr.Allow(t, testpeers.InfoHash(t, torrent))
	return torrent
}

// clients are the third-party programs of the matrix.
var clients = []string{"aria2", "libtorrent", "transmission"}

// TestMatrix moves a single-file and a multi-file torrent between sower
// and each real client, in both directions, and compares the result byte
// for byte with the original.
func TestMatrix(t *testing.T) {
	data := makeTestData(t)
	for _, layout := range []struct{ name, src string }{{"single", data.single}, {"multi", data.multi}} {
		for _, client := range clients {
			t.Run(fmt.Sprintf("%s/%s-seeds-sower-gets", layout.name, client), func(t *testing.T) {
				t.Parallel()
				sowerGetsFrom(t, client, layout.src)
			})
			t.Run(fmt.Sprintf("%s/sower-seeds-%s-gets", layout.name, client), func(t *testing.T) {
				t.Parallel()
				sowerSeedsTo(t, client, layout.src)
			})
		}
	}
}

// sowerGetsFrom has client seed src and `sower get` download it. Sower
// finds aria2 and libtorrent through the tracker; Transmission never
// dials loopback peers nor is found that way usefully, so sower is given
// its address with --peer.
func sowerGetsFrom(t *testing.T, client, src string) {
	torrent := trackedTorrent(t, src)
	data := seedDir(t, src)
	var seed *testpeers.Peer
	var extra []string
	switch client {
	case "aria2":
		seed = testpeers.Aria2Seed(t, torrent, data)
	case "libtorrent":
		seed = testpeers.LibtorrentSeed(t, torrent, data)
	case "transmission":
		seed = testpeers.TransmissionSeed(t, torrent, data)
		extra = []string{"--peer", seed.Addr()}
	default:
		t.Fatalf("unknown client %q", client)
	}
	waitPeer(t, seed, seedReadyWait)

	out := t.TempDir()
	args := append([]string{"get", "-o", out, "--port", strconv.Itoa(testpeers.FreePort(t)), "--quiet"}, extra...)
	get := startSower(t, "get", append(args, torrent)...)
	get.ExitOK(t, transferWait)
	testpeers.SameTree(t, src, filepath.Join(out, filepath.Base(src)))

	// libtorrent publishes its counters a moment later than the data
	// moves, so give the seed's report a few seconds to catch up.
	var st testpeers.Stats
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if st, err = seed.Stats(context.Background()); err != nil {
			t.Fatalf("%s: %v", seed.Name, err)
		}
		if st.Uploaded > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Uploaded == 0 {
		t.Errorf("%s reports no upload (%v): sower got the data from somewhere else", seed.Name, st)
	}
}

// sowerSeedsTo has `sower seed` seed src and client download it. aria2 and
// libtorrent find sower through the tracker once sower has announced;
// sower dials Transmission itself with --peer.
func sowerSeedsTo(t *testing.T, client, src string) {
	torrent := trackedTorrent(t, src)
	data := seedDir(t, src)
	out := t.TempDir()
	port := strconv.Itoa(testpeers.FreePort(t))

	var get *testpeers.Peer
	if client == "transmission" {
		get = testpeers.TransmissionGet(t, torrent, out)
		startSower(t, "seed", "seed", "--port", port, "--quiet", "--peer", get.Addr(), torrent, data)
	} else {
		seed := startSower(t, "seed", "seed", "--port", port, "--quiet", torrent, data)
		ctx, cancel := context.WithTimeout(context.Background(), seedReadyWait)
		seed.WaitLog(t, ctx, announcedRe)
		cancel()
		switch client {
		case "aria2":
			get = testpeers.Aria2Get(t, torrent, out)
		case "libtorrent":
			get = testpeers.LibtorrentGet(t, torrent, out)
		default:
			t.Fatalf("unknown client %q", client)
		}
	}
	waitPeer(t, get, transferWait)
	if client == "transmission" {
		addEmptyFiles(t, src, filepath.Join(out, filepath.Base(src)))
	}
	testpeers.SameTree(t, src, filepath.Join(out, filepath.Base(src)))
}

// addEmptyFiles creates in dst the zero-length files of src that dst lacks:
// Transmission 3.00 never creates a torrent's empty files, a known trait of
// that client and nothing sower could change from the other end.
func addEmptyFiles(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if _, err := os.Stat(target); errors.Is(err, fs.ErrNotExist) {
			t.Logf("transmission did not create the empty file %s; adding it", rel)
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			return os.WriteFile(target, nil, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
