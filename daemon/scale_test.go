package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/metainfo"
)

func TestGlobalDownloadLimitAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("transfers for a few seconds")
	}
	const limit = 1_000_000
	f := newFixture(t, 3_000_000, 32<<10)
	s := seeder(t, f)
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	if err := d.UpdateSettings(func(st *Settings) error { st.SpeedLimitDown = limit; return nil }); err != nil {
		t.Fatal(err)
	}
	add(t, d.Daemon, f, t.TempDir())
	waitFor(t, 10*time.Second, "download start", func() bool { return stateOf(t, d.Daemon, f.ih).State == "downloading" })
	start := time.Now()
	d.AddPeers(f.ih, s.peerAddr())
	waitFor(t, 60*time.Second, "download", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	elapsed := time.Since(start).Seconds()
	st := stateOf(t, d.Daemon, f.ih)
	// The bucket admits at most limit*elapsed plus one burst (an eighth
	// of a second); payload is less than what the socket carried.
	ceiling := limit*elapsed + limit/8
	rate := float64(st.Downloaded) / elapsed
	t.Logf("limit %d B/s: %d payload bytes in %.2f s = %.0f B/s (%.1f%% of the limit)", limit, st.Downloaded, elapsed, rate, 100*rate/limit)
	if float64(st.Downloaded) > ceiling*1.05 {
		t.Fatalf("%d bytes in %.2f s exceeds the %d B/s limit (ceiling %.0f)", st.Downloaded, elapsed, limit, ceiling)
	}
}

// TestThousandTorrents adds 1,000 small seeded torrents to one daemon and
// reports the cost of an idle torrent and of listing them all; it asserts
// only that everything seeds and the API answers.
func TestThousandTorrents(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 torrents")
	}
	const n = 1000
	dir := t.TempDir()
	torrents := make([][]byte, n)
	for i := range n {
		name := filepath.Join(dir, "f"+itoa(i))
		data := []byte(strings.Repeat(itoa(i)+"-", 3000))
		writeFile(t, name, data)
		mi, err := metainfo.Build(context.Background(), name, metainfo.BuildOptions{NoDate: true, PieceLength: 16 << 10, Workers: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if torrents[i], err = mi.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goBefore := runtime.NumGoroutine()

	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0", CheckpointInterval: 500 * time.Millisecond, ParkAfter: time.Second})
	start := time.Now()
	for i := range n {
		if _, err := d.Add(context.Background(), AddRequest{Metainfo: torrents[i], DownloadDir: dir}); err != nil {
			t.Fatal(err)
		}
	}
	added := time.Since(start)
	waitFor(t, 120*time.Second, "all seeding", func() bool {
		for _, s := range d.List() {
			if s.State != "seeding" {
				return false
			}
		}
		return true
	})
	ready := time.Since(start)
	waitFor(t, 60*time.Second, "all parked", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, t := range d.torrents {
			if !t.parked() {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // let parking garbage settle before measuring idle
	runtime.GC()
	var idle runtime.MemStats
	runtime.ReadMemStats(&idle)
	goIdle := runtime.NumGoroutine()

	if p := os.Getenv("SOWER_CPUPROF"); p != "" {
		cf, _ := os.Create(p)
		pprof.StartCPUProfile(cf)
		defer func() { pprof.StopCPUProfile(); cf.Close() }()
	}
	c := newRPC(t, d)
	c.call("session-get", nil)
	fields := []string{"id", "name", "status", "percentDone", "rateDownload", "rateUpload", "uploadRatio", "eta", "sizeWhenDone", "leftUntilDone", "error", "errorString", "peersGettingFromUs", "peersSendingToUs", "isFinished"}
	const polls = 30
	t0 := time.Now()
	for range polls {
		_, args := c.call("torrent-get", map[string]any{"fields": fields})
		var list []json.RawMessage
		json.Unmarshal(args["torrents"], &list)
		if len(list) != n {
			t.Fatalf("torrent-get listed %d torrents, want %d", len(list), n)
		}
	}
	perList := time.Since(t0) / polls
	resp, err := http.Get("http://" + d.RPCAddr().String() + "/api/v1/torrents")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	runtime.GC()
	var polled runtime.MemStats
	runtime.ReadMemStats(&polled)
	// A parked torrent holds no goroutine: what the daemon runs is a
	// fixed set (listeners, scheduler, announcer, RPC), not one per torrent.
	if extra := goIdle - goBefore; extra > 20 {
		t.Errorf("%d goroutines with 1,000 parked torrents; want a fixed few, none per torrent", extra)
	}
	t.Logf("1,000 torrents: added in %s, all seeding after %s", added.Round(time.Millisecond), ready.Round(time.Millisecond))
	t.Logf("idle: %d goroutines (%.1f per torrent), heap %+.0f KiB (%.1f KiB per torrent)",
		goIdle-goBefore, float64(goIdle-goBefore)/n, float64(int64(idle.HeapAlloc)-int64(before.HeapAlloc))/1024,
		float64(int64(idle.HeapAlloc)-int64(before.HeapAlloc))/1024/n)
	t.Logf("full torrent-get of 1,000: %s each (%d polls); heap after polling %+.0f KiB vs idle",
		perList.Round(time.Microsecond), polls, float64(int64(polled.HeapAlloc)-int64(idle.HeapAlloc))/1024)
	os.Stderr.Sync()
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
