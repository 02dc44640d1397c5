package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/storage"
)

// TestHelperDaemonProcess is not a test: TestSIGKILLResume runs the test
// binary again with SOWER_HELPER_DATA set, and this becomes a daemon
// process that downloads one torrent until it is killed.
func TestHelperDaemonProcess(t *testing.T) {
	data := os.Getenv("SOWER_HELPER_DATA")
	if data == "" {
		t.Skip("helper process only")
	}
	torrent, _ := os.ReadFile(os.Getenv("SOWER_HELPER_TORRENT"))
	peer := netip.MustParseAddrPort(os.Getenv("SOWER_HELPER_PEER"))
	d, err := Open(Config{DataDir: data, PeerAddr: "127.0.0.1:0", NoDHT: true, RPCAddr: "127.0.0.1:0", CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(data, "rpc-addr"), []byte(d.RPCAddr().String()), 0o644)
	res, err := d.Add(context.Background(), AddRequest{Metainfo: torrent, DownloadDir: os.Getenv("SOWER_HELPER_OUT")})
	if err != nil {
		t.Fatal(err)
	}
	d.AddPeers(res.InfoHash, peer)
	// Bounded even if the parent dies without killing us.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d.Run(ctx)
}

func TestSIGKILLResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon process")
	}
	f := newFixture(t, 6<<20, 64<<10)
	s := seeder(t, f)
	// A slow seeder, so the kill lands mid-download.
	limit := int64(1_500_000)
	if err := s.Set(f.ih, TorrentOptions{UploadLimit: &limit}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "seeder restart", func() bool { return stateOf(t, s.Daemon, f.ih).State == "seeding" })

	data, out := t.TempDir(), t.TempDir()
	tf := filepath.Join(t.TempDir(), "x.torrent")
	writeFile(t, tf, f.torrent)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDaemonProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "SOWER_HELPER_DATA="+data, "SOWER_HELPER_TORRENT="+tf, "SOWER_HELPER_OUT="+out,
		"SOWER_HELPER_PEER="+s.peerAddr().String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	var addr string
	waitFor(t, 20*time.Second, "helper daemon", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "rpc-addr"))
		addr = string(b)
		return err == nil && addr != ""
	})
	progress := func() float64 {
		resp, err := http.Get("http://" + addr + "/api/v1/torrents")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var list []Status
		json.NewDecoder(resp.Body).Decode(&list)
		if len(list) != 1 {
			return 0
		}
		return list[0].Progress
	}
	waitFor(t, 60*time.Second, "helper to reach 40%", func() bool { return progress() >= 0.4 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	// Inspect what survived: the checkpoint is inexact, and every piece
	// it vouches for is on disk.
	mi, _ := metainfo.Parse(f.torrent)
	db, err := openStore(filepath.Join(data, "sower.db"))
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := db.loadAll()
	db.close()
	if err != nil || len(recs) != 1 {
		t.Fatalf("state after SIGKILL: %v, %d records", err, len(recs))
	}
	rec := recs[0]
	n := mi.Info.NumPieces()
	ckpt, err := bitfield.FromBytes(rec.Have, n)
	if err != nil || !rec.HaveValid || rec.Clean {
		t.Fatalf("record after SIGKILL: valid %v clean %v err %v", rec.HaveValid, rec.Clean, err)
	}
	if ckpt.Count() == 0 || ckpt.Full() {
		t.Fatalf("checkpoint holds %d of %d pieces; the kill should land mid-download", ckpt.Count(), n)
	}
	layout, _ := storage.NewLayout(engine.Files(&mi.Info), mi.Info.PieceLength)
	dir, err := storage.OpenDir(out, layout, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	firstOutside := -1
	for i := range n {
		ok, err := storage.VerifyPiece(dir, layout, i, mi.Info.Pieces[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		if ckpt.Has(i) && !ok {
			t.Fatalf("piece %d is in the checkpoint but not on disk", i)
		}
		if !ckpt.Has(i) && firstOutside < 0 {
			firstOutside = i
		}
	}
	// Damage a piece outside the checkpoint: it must be hashed, not trusted.
	if _, err := dir.WriteAt([]byte("garbage"), layout.PieceOffset(firstOutside)); err != nil {
		t.Fatal(err)
	}
	dir.Close()

	d := startDaemon(t, Config{DataDir: data})
	var after Status
	waitFor(t, 30*time.Second, "recheck after restart", func() bool {
		after = stateOf(t, d.Daemon, f.ih)
		return after.State == "downloading"
	})
	det, _ := d.Detail(f.ih)
	have, _ := bitfield.FromBytes(det.Have, n)
	for i := range n {
		if ckpt.Has(i) && !have.Has(i) {
			t.Fatalf("verified piece %d lost across the crash", i)
		}
	}
	if have.Has(firstOutside) {
		t.Fatalf("damaged piece %d outside the checkpoint was trusted", firstOutside)
	}
	t.Logf("after SIGKILL: checkpoint %d pieces, after recheck %d of %d", ckpt.Count(), have.Count(), n)
	missing := after.Wanted - after.Completed
	d.AddPeers(f.ih, s.peerAddr())
	var done Status
	waitFor(t, 90*time.Second, "completion after restart", func() bool {
		done = stateOf(t, d.Daemon, f.ih)
		return done.State == "seeding"
	})
	sameFile(t, filepath.Join(out, f.name), f.data)
	fetched := (done.Downloaded - after.Downloaded) - (done.Wasted - after.Wasted)
	if fetched > missing {
		t.Fatalf("downloaded %d useful bytes after restart, but only %d were missing: verified pieces fetched twice", fetched, missing)
	}
}
