package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/dht"
	"github.com/sowerbt/sower/internal/wiretest"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
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

// firstPieceNews connects to the daemon's peer port as a leecher of ih and
// returns what it first learns of the daemon's pieces: "bitfield" (or
// "have-all", BEP 6) for the whole set at once, or "have" for one piece,
// which is how a super-seed (BEP 16) reveals its pieces.
func firstPieceNews(t *testing.T, port uint16, ih [20]byte) string {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var h peerwire.Handshake
	h.InfoHash, h.PeerID = ih, peerwire.NewPeerID()
	h.Reserved.SetFast()
	if err := peerwire.WriteHandshake(c, h); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if _, err := peerwire.ReadHandshake(br); err != nil {
		t.Fatal(err)
	}
	// We have nothing: a leecher the super-seed must serve.
	w := peerwire.NewWriter(c)
	w.WriteMessage(peerwire.Message{ID: peerwire.HaveNone})
	w.WriteMessage(peerwire.Message{ID: peerwire.Interested})
	w.Flush()
	dec := peerwire.NewDecoder(br, peerwire.Limits{})
	for {
		m, err := dec.Next()
		if err != nil {
			t.Fatalf("reading the daemon's messages: %v", err)
		}
		switch m.ID {
		case peerwire.Bitfield:
			return "bitfield"
		case peerwire.HaveAll:
			return "have-all"
		case peerwire.Have:
			return "have"
		}
	}
}

// TestSuperSeedSetting: super-seeding is a per-torrent setting of the
// Sower API, kept in the record and applied to the running engine: a
// peer of a super-seed learns of one piece at a time, not of the whole set.
func TestSuperSeedSetting(t *testing.T) {
	f := newFixture(t, 300_000, 32<<10)
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0", ParkAfter: -1})
	add(t, d.Daemon, f, f.dir)
	waitFor(t, 30*time.Second, "seeding", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	if news := firstPieceNews(t, d.PeerPort(), f.ih); news == "have" {
		t.Fatalf("an ordinary seed revealed one piece (%s)", news)
	}
	base := "http://" + d.RPCAddr().String()
	post := func(body string) {
		t.Helper()
		// The session token first (the CSRF handshake), then the POST.
		resp, err := http.Post(base+"/api/v1/torrents/"+f.hashString()+"/super-seed", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/torrents/"+f.hashString()+"/super-seed", strings.NewReader(body))
		req.Header.Set(sessionHeader, resp.Header.Get(sessionHeader))
		req.Header.Set("Content-Type", "application/json")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST super-seed %s: %d %s", body, resp.StatusCode, b)
		}
	}
	post(`{"enabled": true}`)
	if !stateOf(t, d.Daemon, f.ih).SuperSeed {
		t.Fatal("status does not show super-seeding")
	}
	// The engine restarts with the setting.
	waitFor(t, 30*time.Second, "a peer of the super-seed told of one piece", func() bool {
		return stateOf(t, d.Daemon, f.ih).State == "seeding" && firstPieceNews(t, d.PeerPort(), f.ih) == "have"
	})
	post(`{"enabled": false}`)
	waitFor(t, 30*time.Second, "an ordinary seed again", func() bool {
		return stateOf(t, d.Daemon, f.ih).State == "seeding" && firstPieceNews(t, d.PeerPort(), f.ih) != "have"
	})
	if stateOf(t, d.Daemon, f.ih).SuperSeed {
		t.Fatal("status still shows super-seeding")
	}
}

// TestDHTStateKept: the daemon's DHT node keeps its id and routing table
// in the state database; restarted with only a dead bootstrap address, it
// finds the network again through the nodes it saved.
func TestDHTStateKept(t *testing.T) {
	boot, err := dht.New(dht.Config{Addr: "127.0.0.1:0", RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); boot.Run(ctx) }()
	defer func() { cancel(); <-done }()

	data := t.TempDir()
	open := func(bootstrap string) *Daemon {
		d, err := Open(Config{DataDir: data, PeerAddr: "127.0.0.1:0", DHTBootstrap: []string{bootstrap}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := open(boot.Addr().String())
	if !d.sess.DHTEnabled() {
		t.Fatal("the daemon runs no DHT node")
	}
	id := d.sess.DHT().ID()
	r := runDaemon(t, d)
	waitFor(t, 30*time.Second, "the daemon's node in the bootstrap node's table", func() bool { return boot.Stats().Nodes > 0 })
	waitFor(t, 30*time.Second, "the bootstrap node in the daemon's table", func() bool { return d.sess.DHT().Stats().Nodes > 0 })
	r.stop()

	heard := boot.Stats().QueriesReceived
	d2 := open("127.0.0.1:1") // nothing there
	if got := d2.sess.DHT().ID(); got != id {
		t.Errorf("node id %x after the restart, want the saved %x", got, id)
	}
	runDaemon(t, d2)
	waitFor(t, 30*time.Second, "the restarted node reaching a saved node", func() bool { return boot.Stats().QueriesReceived > heard })
}

// TestMagnetSelectOnly: a magnet link's so= (BEP 53) selects the files the
// daemon downloads once the metadata is in; the others are skipped.
func TestMagnetSelectOnly(t *testing.T) {
	src := filepath.Join(t.TempDir(), "pack")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"a.bin": make([]byte, 200_000), "b.bin": make([]byte, 300_000), "c.bin": make([]byte, 100_000)}
	for name, b := range files {
		rand.Read(b)
		writeFile(t, filepath.Join(src, name), b)
	}
	mi, err := metainfo.Build(context.Background(), src, metainfo.BuildOptions{PieceLength: 32 << 10, NoDate: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mi.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: filepath.Dir(src), name: "pack", torrent: raw, ih: mi.InfoHash}
	s := seeder(t, f)
	// Files sort by path: a.bin is 0, b.bin 1, c.bin 2.
	link := mi.Magnet() + "&so=0,2&x.pe=" + s.peerAddr().String()
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	out := t.TempDir()
	if _, err := d.Add(context.Background(), AddRequest{URL: link, DownloadDir: out}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the selected files", func() bool {
		st := stateOf(t, d.Daemon, f.ih)
		return st.HasMeta && st.Progress == 1
	})
	sameFile(t, filepath.Join(out, "pack", "a.bin"), files["a.bin"])
	sameFile(t, filepath.Join(out, "pack", "c.bin"), files["c.bin"])
	if _, err := os.Stat(filepath.Join(out, "pack", "b.bin")); err == nil {
		t.Error("b.bin, not selected by so=, was created")
	}
	st := stateOf(t, d.Daemon, f.ih)
	if st.Wanted >= st.TotalSize {
		t.Errorf("wanted %d of %d bytes: so= selected nothing", st.Wanted, st.TotalSize)
	}
}

// TestPrivateTorrentInDaemon: the daemon, its DHT on, seeds a public and a
// private torrent; on the wire the private one (BEP 27) is never asked
// about in the DHT, sends no PEX and offers neither ut_pex nor the DHT.
func TestPrivateTorrentInDaemon(t *testing.T) {
	rec, boot := wiretest.StartDHT(t)
	d := startDaemon(t, Config{DataDir: t.TempDir(), DHTBootstrap: []string{boot}, ParkAfter: -1})
	add := func(private bool) [20]byte {
		dir := t.TempDir()
		data := make([]byte, 200_000)
		rand.Read(data)
		writeFile(t, filepath.Join(dir, "data.bin"), data)
		mi, err := metainfo.Build(context.Background(), filepath.Join(dir, "data.bin"), metainfo.BuildOptions{PieceLength: 32 << 10, Private: private}, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := mi.Encode()
		if err != nil {
			t.Fatal(err)
		}
		add(t, d.Daemon, &fixture{dir: dir, torrent: raw, ih: mi.InfoHash}, dir)
		waitFor(t, 30*time.Second, "seeding", func() bool { return stateOf(t, d.Daemon, mi.InfoHash).State == "seeding" })
		return mi.InfoHash
	}
	public, private := add(false), add(true)
	wiretest.CheckPrivate(t, d.sess.Addr(), rec, public, private)
}
