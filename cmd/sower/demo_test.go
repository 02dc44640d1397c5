package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the whole local swarm through the real binary.
func TestDemo(t *testing.T) {
	r := sower(t, t.TempDir(), "demo", "--leechers", "3", "--size", "6MiB")
	if r.code != 0 {
		t.Fatalf("demo exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "all 3 leechers have a verified copy") {
		t.Fatalf("unexpected summary: %s", r.stdout)
	}
}

// TestGetAndSeed downloads a multi-file torrent from `sower seed` with
// `sower get`, through the real binary, and checks the files.
func TestGetAndSeed(t *testing.T) {
	dir := t.TempDir()
	writeData(t, dir, map[string]string{
		"src/album/a.txt":     strings.Repeat("alpha ", 40000),
		"src/album/b/c.txt":   strings.Repeat("charlie ", 70000),
		"src/album/empty.txt": "",
	})
	if r := sower(t, dir, "create", "-q", "--piece-length", "16KiB", "-o", "album.torrent", "src/album"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	port := freePort(t)
	seed := startSower(t, dir, "seed", "--no-dht", "--port", port, "album.torrent", "src")
	defer seed.stop()
	waitPort(t, port)
	r := sower(t, dir, "get", "--no-dht", "--port", "0", "-o", "out", "--peer", "127.0.0.1:"+port, "album.torrent")
	if r.code != 0 {
		t.Fatalf("get exit %d: %s", r.code, r.stderr)
	}
	sameFiles(t, dir+"/src/album", dir+"/out/album")
}

// waitPort waits until something accepts connections on the port.
func waitPort(t *testing.T, port string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on port %s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// bgSower is a sower process running in the background.
type bgSower struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startSower(t *testing.T, dir string, args ...string) *bgSower {
	t.Helper()
	cmd := exec.Command(os.Getenv("SOWER_TEST_BIN"), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &bgSower{t: t, cmd: cmd, stderr: &stderr, done: make(chan error, 1)}
	go func() { b.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return b
}

// stop interrupts the process like Ctrl-C and expects a clean exit 0.
func (b *bgSower) stop() {
	b.t.Helper()
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-b.done:
		if err != nil {
			b.t.Errorf("%v after Ctrl-C: %v\n%s", b.cmd.Args, err, b.stderr)
		}
	case <-time.After(20 * time.Second):
		b.cmd.Process.Kill()
		b.t.Errorf("%v did not stop on Ctrl-C", b.cmd.Args)
	}
}

// sameFiles compares two folders file by file.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(x, y) {
			return fmt.Errorf("%s differs", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGetMagnet downloads from a magnet link: the metadata comes from the
// seed (BEP 9) found through x.pe, then the data.
func TestGetMagnet(t *testing.T) {
	dir := t.TempDir()
	writeData(t, dir, map[string]string{
		"src/pics/a.bin": strings.Repeat("pixel ", 90000),
		"src/pics/b.bin": strings.Repeat("shade ", 50000),
	})
	r := sower(t, dir, "create", "-q", "-o", "pics.torrent", "src/pics")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	var link string
	for _, line := range strings.Split(r.stdout, "\n") {
		if i := strings.Index(line, "magnet:?"); i >= 0 {
			link = strings.TrimSpace(line[i:])
		}
	}
	if link == "" {
		t.Fatalf("no magnet in create output: %s", r.stdout)
	}
	port := freePort(t)
	seed := startSower(t, dir, "seed", "--no-dht", "--port", port, "pics.torrent", "src")
	defer seed.stop()
	waitPort(t, port)
	r = sower(t, dir, "get", "--no-dht", "--port", "0", "-o", "out", link+"&x.pe=127.0.0.1:"+port)
	if r.code != 0 {
		t.Fatalf("get magnet exit %d: %s", r.code, r.stderr)
	}
	sameFiles(t, dir+"/src/pics", dir+"/out/pics")
}

// TestTrackerlessTorrent: a torrent made with --dht-node and no tracker is
// found through the DHT node it names, with no other flag.
func TestTrackerlessTorrent(t *testing.T) {
	dir := t.TempDir()
	node := exec.Command(os.Getenv("SOWER_TEST_BIN"), "dht", "--listen", "127.0.0.1:0", "--rate-limit", "0")
	out, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Process.Kill(); node.Wait() })
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		first <- line
		io.Copy(io.Discard, out)
	}()
	var addr string
	select {
	case line := <-first:
		// "listening on ADDR id HEX"
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("unexpected first line from sower dht: %q", line)
		}
		addr = f[2]
	case <-time.After(20 * time.Second):
		t.Fatal("sower dht did not start")
	}
	writeData(t, dir, map[string]string{"src/notes.txt": strings.Repeat("trackerless ", 30000)})
	if r := sower(t, dir, "create", "-q", "--dht-node", addr, "-o", "notes.torrent", "src/notes.txt"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	port := freePort(t)
	seed := startSower(t, dir, "seed", "--port", port, "notes.torrent", "src")
	defer seed.stop()
	waitPort(t, port)
	r := sower(t, dir, "get", "--port", "0", "-o", "out", "notes.torrent")
	if r.code != 0 {
		t.Fatalf("get through the DHT: exit %d: %s\nseed: %s", r.code, r.stderr, seed.stderr)
	}
	sameFiles(t, dir+"/src", dir+"/out")
}
