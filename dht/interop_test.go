package dht

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// btdhtVersion is the bittorrent-dht release the interop test installs.
const btdhtVersion = "11.0.12"

// installBTDHT makes sure bittorrent-dht is installed in a cache folder
// ($SOWER_NPM_DIR, or the user cache) and returns that folder. It skips
// the test when node or npm is missing.
func installBTDHT(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("interop with bittorrent-dht needs %s on PATH: %v", tool, err)
		}
	}
	dir := os.Getenv("SOWER_NPM_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "sower-test", "bittorrent-dht-"+btdhtVersion)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "bittorrent-dht", "package.json")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--ignore-scripts", "--no-audit", "--no-fund",
			"--prefix", dir, "bittorrent-dht@"+btdhtVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install bittorrent-dht@%s into %s: %v\n%s", btdhtVersion, dir, err, out)
		}
	}
	script, err := os.ReadFile(filepath.Join("testdata", "btdht_net.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	// The script imports the package, so it must live next to node_modules.
	if err := os.WriteFile(filepath.Join(dir, "btdht_net.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// btdhtNet is a running network of bittorrent-dht nodes.
type btdhtNet struct {
	t     *testing.T
	in    io.WriteCloser
	out   *bufio.Scanner
	addrs []string
}

func startBTDHT(t *testing.T, dir string, count int, bootstrap []string) *btdhtNet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	args := append([]string{"btdht_net.mjs", strconv.Itoa(count)}, bootstrap...)
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cancel()
	})
	b := &btdhtNet{t: t, in: in, out: bufio.NewScanner(outPipe)}
	var ready struct {
		Ready bool
		Addrs []string
	}
	b.read(&ready)
	if !ready.Ready {
		t.Fatal("bittorrent-dht network did not report ready")
	}
	b.addrs = ready.Addrs
	return b
}

// read decodes the next reply line, skipping log lines.
func (b *btdhtNet) read(v any) {
	b.t.Helper()
	for b.out.Scan() {
		var probe struct{ Log string }
		if json.Unmarshal(b.out.Bytes(), &probe) == nil && probe.Log != "" {
			b.t.Logf("bittorrent-dht: %s", probe.Log)
			continue
		}
		if err := json.Unmarshal(b.out.Bytes(), v); err != nil {
			b.t.Fatalf("bad line from the bittorrent-dht script %q: %v", b.out.Text(), err)
		}
		return
	}
	b.t.Fatalf("bittorrent-dht script ended: %v", b.out.Err())
}

func (b *btdhtNet) command(c map[string]any, v any) {
	b.t.Helper()
	line, _ := json.Marshal(c)
	if _, err := fmt.Fprintf(b.in, "%s\n", line); err != nil {
		b.t.Fatal(err)
	}
	b.read(v)
}

func TestInteropBittorrentDHT(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test starts node.js; skipped with -short")
	}
	dir := installBTDHT(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Sower nodes on real UDP sockets; every node shares 127.0.0.1, so the
	// per-IP rate limit is off.
	var sower []*Node
	for i := range 4 {
		cfg := Config{Addr: "127.0.0.1:0", RateLimit: -1, Logger: logger, QueryTimeout: time.Second}
		if i > 0 {
			cfg.Bootstrap = []string{sower[0].Addr().String()}
		}
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); n.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
		<-n.running
		sower = append(sower, n)
	}
	js := startBTDHT(t, dir, 20, []string{sower[0].Addr().String()})
	for _, n := range sower {
		for _, a := range js.addrs[:3] {
			n.AddNode(netip.MustParseAddrPort(a))
		}
		if err := n.Bootstrap(ctx); err != nil {
			t.Fatalf("bootstrap %s: %v", n.Addr(), err)
		}
		t.Logf("sower node %s: %d nodes in table", n.Addr(), n.Stats().Nodes)
	}

	t.Run("sower finds peers announced by bittorrent-dht", func(t *testing.T) {
		js.t = t
		ih := randomID(newTestRand())
		var ok struct {
			OK    bool
			Error string
		}
		js.command(map[string]any{"cmd": "announce", "node": 7, "ih": hex.EncodeToString(ih[:]), "port": 51413}, &ok)
		if !ok.OK {
			t.Fatalf("bittorrent-dht announce failed: %s", ok.Error)
		}
		want := netip.MustParseAddrPort("127.0.0.1:51413")
		for _, n := range sower[1:] {
			peers, st, err := n.LookupPeers(ctx, ih)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("sower %s: %d queries, %d rounds, peers %v", n.Addr(), st.Queries, st.Rounds, peers)
			if !slices.Contains(peers, want) {
				t.Errorf("sower node %s did not find %s", n.Addr(), want)
			}
		}
	})

	t.Run("bittorrent-dht finds peers announced by sower", func(t *testing.T) {
		js.t = t
		ih := randomID(newTestRand())
		if err := sower[2].Announce(ctx, ih, 6999, false); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 11, 19} {
			var res struct {
				Peers   []string
				Queries int
				Error   string
			}
			js.command(map[string]any{"cmd": "lookup", "node": i, "ih": hex.EncodeToString(ih[:])}, &res)
			t.Logf("bittorrent-dht node %d: %d queries, peers %v", i, res.Queries, res.Peers)
			if res.Error != "" || !slices.Contains(res.Peers, "127.0.0.1:6999") {
				t.Errorf("bittorrent-dht node %d did not find 127.0.0.1:6999: %v %s", i, res.Peers, res.Error)
			}
		}
	})
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)) }
