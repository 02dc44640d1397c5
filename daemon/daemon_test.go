package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/metainfo"
)

// fixture is a torrent over random data written in a folder.
type fixture struct {
	dir     string // holds the data file
	name    string
	data    []byte
	torrent []byte // .torrent bytes
	ih      [20]byte
}

func newFixture(t testing.TB, size int, pieceLen int64) *fixture {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	name := "data-" + hex.EncodeToString(data[:4]) + ".bin"
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Build(context.Background(), filepath.Join(dir, name), metainfo.BuildOptions{PieceLength: pieceLen, NoDate: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mi.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, name: name, data: data, torrent: raw, ih: mi.InfoHash}
}

// running is a daemon whose Run goroutine the test owns.
type running struct {
	*Daemon
	stop func() error
}

func startDaemon(t testing.TB, cfg Config) *running {
	t.Helper()
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = "127.0.0.1:0"
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 200 * time.Millisecond
	}
	if cfg.DHTBootstrap == nil {
		cfg.NoDHT = true // tests stay on loopback: no public routers
	}
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return runDaemon(t, d)
}

// runDaemon runs an opened daemon until the test ends.
func runDaemon(t testing.TB, d *Daemon) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(30 * time.Second):
				t.Fatal("daemon did not stop within 30 s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return &running{Daemon: d, stop: stop}
}

func (r *running) peerAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), r.PeerPort())
}

// waitFor polls cond until it holds, failing after limit. Polling bounds
// the test without asserting how long anything takes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stateOf(t testing.TB, d *Daemon, ih [20]byte) Status {
	t.Helper()
	s, err := d.Get(ih)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func add(t testing.TB, d *Daemon, f *fixture, dir string) AddResult {
	t.Helper()
	res, err := d.Add(context.Background(), AddRequest{Metainfo: f.torrent, DownloadDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameFile(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the original data", path)
	}
}

// seeder is a daemon that seeds f from its folder.
func seeder(t testing.TB, fs ...*fixture) *running {
	t.Helper()
	s := startDaemon(t, Config{DataDir: t.TempDir()})
	for _, f := range fs {
		add(t, s.Daemon, f, f.dir)
	}
	for _, f := range fs {
		waitFor(t, 30*time.Second, "seeder to verify", func() bool { return stateOf(t, s.Daemon, f.ih).State == "seeding" })
	}
	return s
}

func TestDownloadBetweenDaemons(t *testing.T) {
	f := newFixture(t, 3<<20+777, 64<<10)
	s := seeder(t, f)
	dl := startDaemon(t, Config{DataDir: t.TempDir()})
	out := t.TempDir()
	res := add(t, dl.Daemon, f, out)
	if res.Duplicate || res.ID != 1 {
		t.Fatalf("add: %+v", res)
	}
	if again := add(t, dl.Daemon, f, out); !again.Duplicate || again.ID != res.ID {
		t.Fatalf("second add: %+v, want duplicate of id %d", again, res.ID)
	}
	if err := dl.AddPeers(f.ih, s.peerAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "download to complete", func() bool { return stateOf(t, dl.Daemon, f.ih).State == "seeding" })
	sameFile(t, filepath.Join(out, f.name), f.data)
	st := stateOf(t, dl.Daemon, f.ih)
	if st.Progress != 1 || st.Left != 0 || st.Completed != int64(len(f.data)) {
		t.Fatalf("status after completion: %+v", st)
	}
	det, err := dl.Detail(f.ih)
	if err != nil {
		t.Fatal(err)
	}
	if len(det.Files) != 1 || det.Files[0].Completed != int64(len(f.data)) {
		t.Fatalf("files: %+v", det.Files)
	}
}

func TestGracefulRestartTrustsCheckpoint(t *testing.T) {
	f := newFixture(t, 1<<20, 32<<10)
	data := t.TempDir()
	d := startDaemon(t, Config{DataDir: data})
	add(t, d.Daemon, f, f.dir)
	waitFor(t, 30*time.Second, "verification", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// Damage the data while the daemon is down. A restart that re-hashed
	// would notice; one that trusts its exact checkpoint must not.
	path := filepath.Join(f.dir, f.name)
	b, _ := os.ReadFile(path)
	b[100] ^= 0xff
	os.WriteFile(path, b, 0o644)

	d2 := startDaemon(t, Config{DataDir: data})
	waitFor(t, 10*time.Second, "seeding after restart", func() bool { return stateOf(t, d2.Daemon, f.ih).State == "seeding" })
	if st := stateOf(t, d2.Daemon, f.ih); st.Progress != 1 || st.ID != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	// An explicit verify does hash, and finds the damage.
	if err := d2.Verify(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "verify", func() bool {
		st := stateOf(t, d2.Daemon, f.ih)
		return st.State == "downloading" && st.Progress < 1
	})
}

func TestStopStartRemove(t *testing.T) {
	f := newFixture(t, 256<<10, 16<<10)
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	dir := t.TempDir()
	copyData(t, f, dir)
	add(t, d.Daemon, f, dir)
	waitFor(t, 30*time.Second, "seeding", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	if err := d.Stop(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "stopped", func() bool { return stateOf(t, d.Daemon, f.ih).State == "stopped" })
	if err := d.Start(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "seeding again", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	if err := d.Remove(f.ih, false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(f.ih); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after remove: %v, want ErrNotFound", err)
	}
	sameFile(t, filepath.Join(dir, f.name), f.data)
	add(t, d.Daemon, f, dir)
	if err := d.Remove(f.ih, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, f.name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data still there after remove with data: %v", err)
	}
	if err := d.Remove(f.ih, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v, want ErrNotFound", err)
	}
}

func copyData(t testing.TB, f *fixture, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestQueueLimitsDownloads(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	if err := d.UpdateSettings(func(s *Settings) error { s.DownloadQueueSize = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	a, b := newFixture(t, 64<<10, 16<<10), newFixture(t, 64<<10, 16<<10)
	add(t, d.Daemon, a, t.TempDir())
	add(t, d.Daemon, b, t.TempDir())
	waitFor(t, 10*time.Second, "first to download, second to queue", func() bool {
		return stateOf(t, d.Daemon, a.ih).State == "downloading" && stateOf(t, d.Daemon, b.ih).State == "queued"
	})
	if err := d.Stop(a.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "second to take the slot", func() bool {
		return stateOf(t, d.Daemon, b.ih).State == "downloading"
	})
}

func TestSeedRatioLimitStopsSeeding(t *testing.T) {
	f := newFixture(t, 512<<10, 32<<10)
	s := startDaemon(t, Config{DataDir: t.TempDir()})
	add(t, s.Daemon, f, f.dir)
	ratio := 0.5
	if err := s.Set(f.ih, TorrentOptions{RatioLimit: &ratio}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "seeding", func() bool { return stateOf(t, s.Daemon, f.ih).State == "seeding" })
	dl := startDaemon(t, Config{DataDir: t.TempDir()})
	add(t, dl.Daemon, f, t.TempDir())
	dl.AddPeers(f.ih, s.peerAddr())
	waitFor(t, 60*time.Second, "the seeder to stop at ratio 0.5", func() bool {
		st := stateOf(t, s.Daemon, f.ih)
		return st.State == "stopped" && st.Paused
	})
	if st := stateOf(t, s.Daemon, f.ih); st.Ratio < ratio {
		t.Fatalf("stopped at ratio %.2f, limit %.2f", st.Ratio, ratio)
	}
}

func TestMagnetWaitsForMetadata(t *testing.T) {
	f := newFixture(t, 128<<10, 16<<10)
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	mi, err := metainfo.Parse(f.torrent)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Add(context.Background(), AddRequest{URL: mi.Magnet(), DownloadDir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	// No peers: the fetch waits (one goroutine parked on its peer channel)
	// and says so.
	time.Sleep(300 * time.Millisecond)
	st := stateOf(t, d.Daemon, res.InfoHash)
	if st.State != "metadata" || st.HasMeta || !strings.Contains(st.Error, "waiting for peers") || st.Name != f.name {
		t.Fatalf("magnet status: %+v", st)
	}
	if err := d.AddMetadata(res.InfoHash, []byte("d4:name1:xe")); err == nil {
		t.Fatal("metadata with the wrong hash accepted")
	}
	if err := d.AddMetadata(res.InfoHash, mi.InfoBytes); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "seeding after metadata", func() bool { return stateOf(t, d.Daemon, res.InfoHash).State == "seeding" })
}

func TestMagnetFetchesMetadataFromPeers(t *testing.T) {
	f := newFixture(t, 300<<10, 16<<10)
	s := seeder(t, f)
	mi, _ := metainfo.Parse(f.torrent)
	link := mi.Magnet() + "&x.pe=" + s.peerAddr().String()
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	out := t.TempDir()
	res, err := d.Add(context.Background(), AddRequest{URL: link, DownloadDir: out})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "download from a magnet", func() bool { return stateOf(t, d.Daemon, res.InfoHash).State == "seeding" })
	sameFile(t, filepath.Join(out, f.name), f.data)
}

func TestBadInput(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  AddRequest
	}{
		{"garbage", AddRequest{Metainfo: []byte("this is not bencode")}},
		{"huge", AddRequest{Metainfo: make([]byte, metainfo.MaxFileSize+1)}},
		{"both", AddRequest{Metainfo: []byte("x"), URL: "magnet:?"}},
		{"none", AddRequest{}},
		{"bad magnet", AddRequest{URL: "magnet:?xt=urn:btih:zz"}},
		{"scheme", AddRequest{URL: "ftp://example.org/x.torrent"}},
	} {
		if _, err := d.Add(ctx, tc.req); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if len(d.List()) != 0 {
		t.Fatal("bad input left torrents behind")
	}
}

func TestUnwritableFolderIsAnError(t *testing.T) {
	// A folder below a regular file cannot be created, even by root
	// (who ignores permission bits).
	f := newFixture(t, 64<<10, 16<<10)
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	d := startDaemon(t, Config{DataDir: t.TempDir(), RetryAfter: time.Hour})
	add(t, d.Daemon, f, filepath.Join(blocker, "sub"))
	waitFor(t, 10*time.Second, "error state", func() bool { return stateOf(t, d.Daemon, f.ih).State == "error" })
	st := stateOf(t, d.Daemon, f.ih)
	if !bytes.Contains([]byte(st.Error), []byte(blocker)) {
		t.Fatalf("error %q does not name the folder", st.Error)
	}
	// Moving the torrent to a usable folder (with the data) recovers it.
	dir := t.TempDir()
	copyData(t, f, dir)
	if err := d.Move(f.ih, dir, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "seeding after the move", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
}

func TestSettingsPersist(t *testing.T) {
	data := t.TempDir()
	d := startDaemon(t, Config{DataDir: data})
	err := d.UpdateSettings(func(s *Settings) error {
		s.SpeedLimitDown, s.SeedQueueSize = 123_000, 7
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.UpdateSettings(func(s *Settings) error { s.SeedQueueSize = -1; return nil }); err == nil {
		t.Fatal("negative queue size accepted")
	}
	d.stop()
	d2 := startDaemon(t, Config{DataDir: data})
	s := d2.Settings()
	if s.SpeedLimitDown != 123_000 || s.SeedQueueSize != 7 {
		t.Fatalf("settings after restart: %+v", s)
	}
	if got := d2.down.Limit(); float64(got) != 123_000 {
		t.Fatalf("global limiter at %v, want 123000", got)
	}
}

func TestSecondDaemonOnSameStateRefused(t *testing.T) {
	data := t.TempDir()
	startDaemon(t, Config{DataDir: data})
	_, err := Open(Config{DataDir: data, PeerAddr: "127.0.0.1:0", NoDHT: true})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second daemon on the same state: %v, want a locked error", err)
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
