package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/metainfo"
)

const playwrightVersion = "1.64.1"

// installPlaywright makes sure playwright-core is installed in a cache
// folder ($SOWER_NPM_DIR, or the user cache) next to the test script and
// returns that folder. It skips when node, npm or Chromium is missing.
func installPlaywright(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the web UI test needs %s (Debian chromium, Node.js): %v", tool, err)
		}
	}
	dir := os.Getenv("SOWER_NPM_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "sower-test", "playwright-core-"+playwrightVersion)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--ignore-scripts", "--no-audit", "--no-fund",
			"--prefix", dir, "playwright-core@"+playwrightVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install playwright-core@%s into %s: %v\n%s", playwrightVersion, dir, err, out)
		}
	}
	script, err := os.ReadFile(filepath.Join("testdata", "webui.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "webui.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWebUIInChromium adds a torrent through the page in headless
// Chromium, watches it complete and the piece map fill, and saves a
// screenshot ($SOWER_TEST_ARTIFACTS, default the temp folder).
func TestWebUIInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	dir := installPlaywright(t)
	f := newFixture(t, 2<<20, 32<<10)
	s := seeder(t, f)
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0", DownloadDir: t.TempDir()})
	mi, _ := metainfo.Parse(f.torrent)
	link := mi.Magnet() + "&x.pe=" + s.peerAddr().String()
	artifacts := os.Getenv("SOWER_TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = os.TempDir()
	}
	shot := filepath.Join(artifacts, "sower-webui.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "webui.mjs", "http://"+d.RPCAddr().String()+"/", link, shot)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser script: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ok "+f.name) {
		t.Fatalf("browser script output: %s", out)
	}
	st := stateOf(t, d.Daemon, f.ih)
	sameFile(t, filepath.Join(st.Dir, f.name), f.data)
	t.Logf("screenshot: %s", shot)
}
