//go:build unix

package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/metainfo"
)

// TestTorrentAddFilenameOnlyRegularFiles: torrent-add's "filename" reads
// a regular .torrent on the daemon's host and nothing else. A FIFO without
// a writer used to hang the request (and one with a writer, or a device,
// was read without end); every refusal is the same sentence, so a caller
// learns neither whether a path exists nor what its first byte is.
func TestTorrentAddFilenameOnlyRegularFiles(t *testing.T) {
	f := newFixture(t, 64<<10, 16<<10)
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0"})
	c := newRPC(t, d)
	c.client = &http.Client{Timeout: 15 * time.Second} // a hang fails, not stalls

	dir := t.TempDir()
	good := filepath.Join(dir, "good.torrent")
	writeFile(t, good, f.torrent)
	junk := filepath.Join(dir, "junk.torrent")
	writeFile(t, junk, []byte("hello, I exist"))
	fifo := filepath.Join(dir, "fifo.torrent")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.torrent")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, metainfo.MaxFileSize+1); err != nil { // sparse
		t.Fatal(err)
	}

	missing, _ := c.call("torrent-add", map[string]any{"filename": filepath.Join(dir, "missing.torrent"), "paused": true})
	if missing == "success" || strings.Contains(missing, "missing.torrent") || strings.Contains(missing, "no such") {
		t.Errorf("missing file: %q", missing)
	}
	for _, p := range []string{junk, fifo, huge, dir, "/dev/null", "/dev/zero"} {
		res, _ := c.call("torrent-add", map[string]any{"filename": p, "paused": true})
		if res != missing {
			t.Errorf("torrent-add %s: %q, want the same answer as for a missing file (%q)", p, res, missing)
		}
	}
	if res, args := c.call("torrent-add", map[string]any{"filename": good, "paused": true}); res != "success" || args["torrent-added"] == nil {
		t.Fatalf("a regular .torrent: %q %v", res, args)
	}
}
