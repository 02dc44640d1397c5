package trackerless

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sowerbt/sower/daemon"
	"github.com/sowerbt/sower/internal/sowertest"
	"github.com/sowerbt/sower/internal/testpeers"
)

// sowerCmd runs a short sower command (add, ls) and returns its stdout.
func sowerCmd(ctx context.Context, t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.CommandContext(ctx, sowertest.Bin(t, binEnv), args...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), fmt.Errorf("sower %v: %v: %s", args, err, ee.Stderr)
	}
	return string(out), err
}

// startDaemon runs `sower daemon` on free ports with the DHT joined
// through boot, downloading into out, and returns its RPC address once it
// answers.
func startDaemon(t *testing.T, ctx context.Context, boot, out string) string {
	t.Helper()
	rpc := "127.0.0.1:" + strconv.Itoa(testpeers.FreePort(t))
	d := startSower(t, "daemon", nil, "daemon", "--rpc", rpc, "--listen", "127.0.0.1:"+strconv.Itoa(testpeers.FreePort(t)),
		"--dht-bootstrap", boot, "--data", t.TempDir(), "--download-dir", out)
	for {
		if _, err := sowerCmd(ctx, t, "ls", "--rpc", rpc); err == nil {
			return rpc
		}
		select {
		case <-d.Done():
			t.Fatalf("sower daemon exited: %v", d.Err())
		case <-ctx.Done():
			t.Fatal("sower daemon's RPC never answered")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// daemonStatus returns the daemon's status of the torrent ih.
func daemonStatus(ctx context.Context, t *testing.T, rpc, ih string) (daemon.Status, error) {
	out, err := sowerCmd(ctx, t, "ls", "--json", "--rpc", rpc)
	if err != nil {
		return daemon.Status{}, err
	}
	var list []daemon.Status
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return daemon.Status{}, err
	}
	for _, s := range list {
		if s.InfoHash == ih {
			return s, nil
		}
	}
	return daemon.Status{}, fmt.Errorf("torrent %s not listed", ih)
}

// TestDaemonTrackerlessMagnet: the daemon, its DHT joined through a
// standalone sower node, is given a magnet link with no tracker and no
// peer; it finds a libtorrent seed in the DHT, fetches the metadata from it
// and downloads the data, byte-identical.
func TestDaemonTrackerlessMagnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	boot := startDHTNode(t)
	dataDir, file, torrent, ih := swarmData(t, "daemon-dht.bin")
	seed := testpeers.LibtorrentDHTSeed(t, torrent, dataDir, testpeers.DHTOptions{Bootstrap: []string{boot}})
	waitPeer(t, ctx, seed.Peer)
	if _, err := seed.WaitEvent(ctx, "dht-reply"); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	rpc := startDaemon(t, ctx, boot, out)
	if _, err := sowerCmd(ctx, t, "add", "--rpc", rpc, magnetLink(ih, "daemon-dht.bin")); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := daemonStatus(ctx, t, rpc, ih)
		if err != nil {
			t.Fatal(err)
		}
		if st.Progress == 1 && st.HasMeta {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("daemon did not complete the magnet: %+v", st)
		case <-time.After(200 * time.Millisecond):
		}
	}
	testpeers.SameTree(t, file, filepath.Join(out, filepath.Base(file)))
	if !sawSower(seed) {
		t.Fatalf("libtorrent never saw sower's peer id; peers seen: %v", seed.PeersSeen())
	}
}
