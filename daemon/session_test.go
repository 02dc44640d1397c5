package daemon

import (
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/trackerserver"
)

// TestReannounceAndTrackerStats: transmission-remote --reannounce makes
// the daemon announce again at once (the tracker counts it), and RPC
// trackerStats carries what the tracker said: seeders, leechers and
// downloads (from a scrape), the last result and the next announce.
func TestReannounceAndTrackerStats(t *testing.T) {
	bin, err := exec.LookPath("transmission-remote")
	if err != nil {
		t.Skip("transmission-remote not installed (Debian package transmission-cli)")
	}
	srv, err := trackerserver.New(trackerserver.Config{Interval: trackerserver.Duration(time.Hour), MinInterval: trackerserver.Duration(time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &announceLog{next: srv.Handler()}
	ts := httptest.NewServer(log)
	defer ts.Close()
	f := fixtureWithTracker(t, 300_000, ts.URL+"/announce")
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0", ParkAfter: -1, AnnounceFloor: time.Second})
	add(t, d.Daemon, f, f.dir)
	waitFor(t, 30*time.Second, "seeding", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	waitFor(t, 30*time.Second, "the started announce", func() bool {
		det, err := d.Detail(f.ih)
		return err == nil && len(det.TrackerStats) == 1 && det.TrackerStats[0].LastOK
	})
	before := len(log.snapshot())
	cmd := exec.Command(bin, d.RPCAddr().String(), "-t", "1", "--reannounce")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "success") {
		t.Fatalf("transmission-remote --reannounce: %v\n%s", err, out)
	}
	// The tracker's interval is an hour: only the reannounce can bring
	// another announce within seconds (after the 1 s min interval).
	waitFor(t, 15*time.Second, "the reannounce at the tracker", func() bool { return len(log.snapshot()) > before })
	if ev := log.snapshot()[before]; ev != "" {
		t.Errorf("reannounce sent event %q, want a regular announce", ev)
	}

	rpc := newRPC(t, d)
	res, args := rpc.call("torrent-get", map[string]any{"ids": []int{1}, "fields": []string{"trackerStats"}})
	if res != "success" {
		t.Fatal(res)
	}
	var got struct {
		Torrents []struct {
			TrackerStats []map[string]any `json:"trackerStats"`
		} `json:"torrents"`
	}
	if err := json.Unmarshal(mustJSON(t, args), &got); err != nil {
		t.Fatal(err)
	}
	ts0 := got.Torrents[0].TrackerStats[0]
	if ts0["announce"] != ts.URL+"/announce" || ts0["lastAnnounceSucceeded"] != true || ts0["lastAnnounceResult"] != "Success" {
		t.Errorf("trackerStats %v", ts0)
	}
	// We are the only peer: one seeder, no leecher, no download yet.
	if ts0["seederCount"] != 1.0 || ts0["leecherCount"] != 0.0 || ts0["downloadCount"] != 0.0 {
		t.Errorf("trackerStats counts %v", ts0)
	}
	if ts0["lastAnnounceTime"].(float64) <= 0 || ts0["nextAnnounceTime"].(float64) <= ts0["lastAnnounceTime"].(float64) || ts0["lastScrapeTime"].(float64) <= 0 {
		t.Errorf("trackerStats times %v", ts0)
	}

	// Stopped, a torrent is not announced, and reannounce says so.
	if err := d.Stop(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "stop", func() bool { return stateOf(t, d.Daemon, f.ih).State == "stopped" })
	if res, _ := rpc.call("torrent-reannounce", map[string]any{"ids": []int{1}}); res == "success" {
		t.Error("reannounce of a stopped torrent answered success")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
