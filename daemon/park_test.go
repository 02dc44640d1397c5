package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/trackerserver"
)

// parkAfter is the short idle time of the tests' seeders.
const parkAfter = 300 * time.Millisecond

func isParked(d *Daemon, ih [20]byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.torrents[ih]
	return t != nil && t.parked()
}

// parkingSeeder seeds fs from their folders and parks them when idle.
func parkingSeeder(t *testing.T, fs ...*fixture) *running {
	t.Helper()
	s := startDaemon(t, Config{DataDir: t.TempDir(), ParkAfter: parkAfter})
	for _, f := range fs {
		add(t, s.Daemon, f, f.dir)
	}
	for _, f := range fs {
		waitFor(t, 30*time.Second, "torrent to park", func() bool { return isParked(s.Daemon, f.ih) })
	}
	return s
}

func TestIdleSeedParks(t *testing.T) {
	f := newFixture(t, 300_000, 32<<10)
	s := parkingSeeder(t, f)
	st := stateOf(t, s.Daemon, f.ih)
	if st.State != "seeding" || st.Progress != 1 || st.TotalSize != int64(len(f.data)) || st.Left != 0 || st.PieceCount != 10 {
		t.Fatalf("parked torrent lists as %+v; want seeding, complete, its sizes", st)
	}
	s.mu.Lock()
	tr := s.torrents[f.ih]
	heldMeta := tr.mi != nil || tr.layout != nil || tr.run != nil
	s.mu.Unlock()
	if heldMeta {
		t.Fatal("a parked torrent still holds its metainfo, layout or engine")
	}
	det, err := s.Detail(f.ih)
	if err != nil || len(det.Files) != 1 || det.Files[0].Completed != int64(len(f.data)) {
		t.Fatalf("detail of a parked torrent: %v, %+v", err, det.Files)
	}
	// Seeding limits still apply: a reached ratio stops a parked seed.
	ratio := 0.001
	if err := s.Set(f.ih, TorrentOptions{RatioLimit: &ratio}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.torrents[f.ih].rec.Uploaded = int64(len(f.data)) // as if it had seeded once
	s.mu.Unlock()
	s.kickScheduler()
	waitFor(t, 10*time.Second, "ratio limit to stop the parked seed", func() bool { return stateOf(t, s.Daemon, f.ih).State == "stopped" })
}

func TestParkedSeedWakesForIncomingPeer(t *testing.T) {
	f := newFixture(t, 2<<20, 64<<10)
	s := parkingSeeder(t, f)
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	out := t.TempDir()
	add(t, d.Daemon, f, out)
	// The downloader dials the parked seed: the listener wakes it.
	if err := d.AddPeers(f.ih, s.peerAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "download from the parked seed", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	sameFile(t, filepath.Join(out, f.name), f.data)
	// The seeder's counters are published about once a second.
	waitFor(t, 10*time.Second, "seeder to count the upload", func() bool { return stateOf(t, s.Daemon, f.ih).Uploaded >= int64(len(f.data)) })
	// Without peers it parks again.
	d.Remove(f.ih, false)
	waitFor(t, 30*time.Second, "seed to park again", func() bool { return isParked(s.Daemon, f.ih) })
}

func TestStopRemoveParked(t *testing.T) {
	f := newFixture(t, 200_000, 32<<10)
	data := t.TempDir()
	copyData(t, f, data)
	s := startDaemon(t, Config{DataDir: t.TempDir(), ParkAfter: parkAfter})
	add(t, s.Daemon, f, data)
	waitFor(t, 30*time.Second, "park", func() bool { return isParked(s.Daemon, f.ih) })

	if err := s.Stop(f.ih); err != nil {
		t.Fatal(err)
	}
	if st := stateOf(t, s.Daemon, f.ih); st.State != "stopped" || isParked(s.Daemon, f.ih) || st.Progress != 1 {
		t.Fatalf("after stop: %+v, parked %v", st, isParked(s.Daemon, f.ih))
	}
	if err := s.Start(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "park after restart", func() bool { return isParked(s.Daemon, f.ih) })

	// Verify hashes a parked torrent again.
	if err := s.Verify(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "park after verify", func() bool { return isParked(s.Daemon, f.ih) })

	if err := s.Remove(f.ih, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(f.ih); err == nil {
		t.Fatal("removed torrent still listed")
	}
	if _, err := os.Stat(filepath.Join(data, f.name)); !os.IsNotExist(err) {
		t.Fatalf("data of a removed parked torrent: %v, want it deleted", err)
	}
}

// announceLog wraps a tracker's handler and records each announce's event.
type announceLog struct {
	next   http.Handler
	mu     sync.Mutex
	events []string
}

func (l *announceLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.events = append(l.events, r.URL.Query().Get("event"))
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

func (l *announceLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func fixtureWithTracker(t *testing.T, size int, announce string) *fixture {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	name := "data-" + hex.EncodeToString(data[:4]) + ".bin"
	writeFile(t, filepath.Join(dir, name), data)
	mi, err := metainfo.Build(context.Background(), filepath.Join(dir, name), metainfo.BuildOptions{PieceLength: 32 << 10, NoDate: true, Trackers: []string{announce}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mi.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, name: name, data: data, torrent: raw, ih: mi.InfoHash}
}

func TestParkedSeedReannounces(t *testing.T) {
	srv, err := trackerserver.New(trackerserver.Config{Interval: trackerserver.Duration(time.Second), MinInterval: trackerserver.Duration(time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &announceLog{next: srv.Handler()}
	ts := httptest.NewServer(log)
	defer ts.Close()
	f := fixtureWithTracker(t, 500_000, ts.URL+"/announce")

	open := func(cfg Config) *running {
		d, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return runDaemon(t, d)
	}
	s := open(Config{DataDir: t.TempDir(), PeerAddr: "127.0.0.1:0", NoDHT: true, CheckpointInterval: 100 * time.Millisecond, ParkAfter: parkAfter, AnnounceFloor: 200 * time.Millisecond})
	add(t, s.Daemon, f, f.dir)
	waitFor(t, 30*time.Second, "park", func() bool { return isParked(s.Daemon, f.ih) })
	parkedAt := len(log.snapshot())
	waitFor(t, 30*time.Second, "three announces while parked", func() bool { return len(log.snapshot()) >= parkedAt+3 })
	events := log.snapshot()
	if events[0] != "started" {
		t.Fatalf("first announce has event %q, want started", events[0])
	}
	for i, e := range events[1:] {
		if e != "" {
			t.Fatalf("announce %d has event %q; parking must not tell the tracker anything", i+1, e)
		}
	}
	if !isParked(s.Daemon, f.ih) {
		t.Fatal("a re-announce without leechers woke the seed")
	}

	// A leecher finds the parked seed through the tracker.
	d := open(Config{DataDir: t.TempDir(), PeerAddr: "127.0.0.1:0", NoDHT: true, CheckpointInterval: 100 * time.Millisecond})
	out := t.TempDir()
	add(t, d.Daemon, f, out)
	waitFor(t, 60*time.Second, "download through the tracker", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	sameFile(t, filepath.Join(out, f.name), f.data)

	// Removing the seed says "stopped".
	if err := s.Remove(f.ih, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "stopped announce", func() bool {
		ev := log.snapshot()
		for _, e := range ev[parkedAt:] {
			if e == "stopped" {
				return true
			}
		}
		return false
	})
}

// TestHelperParkedProcess is not a test: TestSIGKILLWhileParked runs the
// test binary again with SOWER_PARK_DATA set, and this becomes a daemon
// that seeds one torrent until it is killed.
func TestHelperParkedProcess(t *testing.T) {
	data := os.Getenv("SOWER_PARK_DATA")
	if data == "" {
		t.Skip("helper process only")
	}
	torrent, _ := os.ReadFile(os.Getenv("SOWER_PARK_TORRENT"))
	d, err := Open(Config{DataDir: data, PeerAddr: "127.0.0.1:0", NoDHT: true, CheckpointInterval: 100 * time.Millisecond, ParkAfter: parkAfter})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Add(context.Background(), AddRequest{Metainfo: torrent, DownloadDir: os.Getenv("SOWER_PARK_OUT")})
	if err != nil {
		t.Fatal(err)
	}
	// Bounded even if the parent dies without killing us.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		for ctx.Err() == nil && !isParked(d, res.InfoHash) {
			time.Sleep(20 * time.Millisecond)
		}
		os.WriteFile(filepath.Join(data, "parked"), nil, 0o644)
	}()
	d.Run(ctx)
}

func TestSIGKILLWhileParked(t *testing.T) {
	f := newFixture(t, 1<<20, 64<<10)
	data := t.TempDir()
	tf := filepath.Join(t.TempDir(), "x.torrent")
	writeFile(t, tf, f.torrent)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperParkedProcess$")
	cmd.Env = append(os.Environ(), "SOWER_PARK_DATA="+data, "SOWER_PARK_TORRENT="+tf, "SOWER_PARK_OUT="+f.dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	waitFor(t, 60*time.Second, "helper to park", func() bool {
		_, err := os.Stat(filepath.Join(data, "parked"))
		return err == nil
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// Damage the data where nobody looks: a re-hash would find it, a
	// restart that trusts the checkpoint does not.
	p := filepath.Join(f.dir, f.name)
	b, _ := os.ReadFile(p)
	b[0] ^= 0xff
	writeFile(t, p, b)

	d := startDaemon(t, Config{DataDir: data, ParkAfter: parkAfter})
	st := stateOf(t, d.Daemon, f.ih)
	if st.State != "seeding" || st.Progress != 1 || !isParked(d.Daemon, f.ih) {
		t.Fatalf("after SIGKILL while parked, restart lists %+v (parked %v); want a parked seed at once", st, isParked(d.Daemon, f.ih))
	}
	// It wakes without hashing either: still complete.
	// (Run may not have started yet: until it has, nothing wakes.)
	waitFor(t, 10*time.Second, "wake", func() bool { return d.wakeEngine(f.ih) != nil })
	if st := stateOf(t, d.Daemon, f.ih); st.State != "seeding" || st.Left != 0 {
		t.Fatalf("after wake: %+v; want seeding with nothing left (no re-hash)", st)
	}
}

func TestLifecycleTransitions(t *testing.T) {
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
	tor := &torrent{}
	// The path of a seed through its life, then a removal.
	for _, to := range []life{lifeChecking, lifeRunning, lifeParking, lifeParked, lifeIdle, lifeWaking, lifeRunning, lifeHeld, lifeIdle, lifeRemoving} {
		d.setLifeLocked(tor, to)
		if tor.life != to {
			t.Fatalf("life %s, want %s", tor.life, to)
		}
	}
	for _, bad := range [][2]life{{lifeRemoving, lifeIdle}, {lifeParked, lifeRunning}, {lifeIdle, lifeRunning}, {lifeHeld, lifeChecking}, {lifeParked, lifeParked}} {
		tor.life = bad[0]
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s -> %s was allowed", bad[0], bad[1])
				}
			}()
			d.setLifeLocked(tor, bad[1])
		}()
	}
}
