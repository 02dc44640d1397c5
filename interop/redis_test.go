package interop

import (
	"context"
	"encoding/hex"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/tracker"
	"github.com/sowerbt/sower/trackerserver"
	"github.com/sowerbt/sower/trackerserver/redisstore"
)

// startSharedTracker runs a tracker on the Redis at addr, on loopback,
// until the test ends, and returns its HTTP announce URL.
func startSharedTracker(t *testing.T, addr string) string {
	t.Helper()
	o, err := redisstore.ParseURLs([]string{"redis://" + addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := trackerserver.New(trackerserver.Config{Interval: trackerserver.Duration(5 * time.Second), ExpireFactor: 100, Store: st}, nil)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, []net.Listener{ln}, nil) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("tracker did not stop within 20s")
		}
		srv.Close()
		st.Close()
	})
	return "http://" + ln.Addr().String() + "/announce"
}

// TestSharedTrackerRealClients: two tracker instances on one Redis. A
// libtorrent seed announces to instance A only; aria2 and Sower announce to
// instance B only, find the seed through it and complete; both instances
// count Sower's download once and agree on the counts.
func TestSharedTrackerRealClients(t *testing.T) {
	rd := testpeers.StartRedis(t)
	urlA, urlB := startSharedTracker(t, rd.Addr), startSharedTracker(t, rd.Addr)

	dataDir := t.TempDir()
	file := filepath.Join(dataDir, "shared.bin")
	testpeers.RandomFile(t, file, 4<<20)
	torrentA := testpeers.Mktorrent(t, file, urlA, 64<<10)
	torrentB := testpeers.Mktorrent(t, file, urlB, 64<<10)
	ihHex := testpeers.InfoHash(t, torrentA)
	if h := testpeers.InfoHash(t, torrentB); h != ihHex {
		t.Fatalf("the two torrents differ: %s and %s", ihHex, h)
	}
	b, _ := hex.DecodeString(ihHex)
	ih := [20]byte(b)

	seed := testpeers.LibtorrentSeed(t, torrentA, dataDir)
	waitPeer(t, seed, seedReadyWait)
	waitCounts(t, urlB, ih, func(s tracker.ScrapeStats) bool { return s.Complete >= 1 }, "the seed, announced to A, counted by B")

	outAria2, outSower := t.TempDir(), t.TempDir()
	// Sower first, alone: its "completed", sent to B, is counted once by
	// both instances.
	get := startSower(t, "get", "get", "-o", outSower, "--port", strconv.Itoa(testpeers.FreePort(t)), "--quiet", "--no-dht", torrentB)
	get.ExitOK(t, transferWait)
	testpeers.SameTree(t, file, filepath.Join(outSower, "shared.bin"))
	for _, u := range []string{urlA, urlB} {
		waitCounts(t, u, ih, func(s tracker.ScrapeStats) bool { return s.Downloaded == 1 }, "sower's download counted once")
	}
	// Then aria2 through B. aria2 with --seed-time=0 exits right after
	// its download and was not seen to send "completed" in time to be
	// counted, so only the agreement of the instances is asserted.
	aria2 := testpeers.Aria2Get(t, torrentB, outAria2)
	waitPeer(t, aria2, transferWait)
	testpeers.SameTree(t, file, filepath.Join(outAria2, "shared.bin"))
	var counts [2]tracker.ScrapeStats
	for i, u := range []string{urlA, urlB} {
		waitCounts(t, u, ih, func(s tracker.ScrapeStats) bool { counts[i] = s; return s.Downloaded >= 1 }, "downloads counted")
	}
	if counts[0] != counts[1] {
		t.Errorf("the instances disagree: A %+v, B %+v", counts[0], counts[1])
	}
}

// waitCounts polls a tracker's scrape of ih until ok holds (30 s at most).
func waitCounts(t *testing.T, url string, ih [20]byte, ok func(tracker.ScrapeStats) bool, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &tracker.Client{HTTPTimeout: 5 * time.Second}
	var last tracker.ScrapeStats
	var err error
	for {
		var st map[[20]byte]tracker.ScrapeStats
		if st, err = c.Scrape(ctx, url, [][20]byte{ih}); err == nil {
			if last = st[ih]; ok(last) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: scrape of %s shows %+v (last error %v)", what, url, last, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
