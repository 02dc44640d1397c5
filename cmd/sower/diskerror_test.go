package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGetIntoFullDisk: `sower get` into a 16 MiB file system for 24 MiB of
// data stops at the first failed write, exits non-zero within seconds and
// says which file and why, instead of downloading the same pieces again
// and again.
func TestGetIntoFullDisk(t *testing.T) {
	testGetWriteError(t, "size=16m", "no space left on device")
}

// TestGetIntoReadOnlyFolder: the same into a read-only file system (as
// root, permissions alone would not stop the writes).
func TestGetIntoReadOnlyFolder(t *testing.T) {
	testGetWriteError(t, "ro,size=1m", "read-only file system")
}

func testGetWriteError(t *testing.T, mountOpts, cause string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	for _, name := range []string{"a.bin", "b.bin"} {
		data := make([]byte, 12<<20)
		rand.Read(data)
		writeData(t, dir, map[string]string{"src/big/" + name: string(data)})
	}
	if r := sower(t, dir, "create", "-q", "--piece-length", "256KiB", "-o", "big.torrent", "src/big"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", mountOpts, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", mnt, err, out)
			}
			mounted = false
		}
	}
	defer unmount()

	port := freePort(t)
	seed := startSower(t, dir, "seed", "--no-dht", "--port", port, "big.torrent", "src")
	defer seed.stop()
	waitPort(t, port)

	// The bound is the point of the test: before, get never exited.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("SOWER_TEST_BIN"), "get", "--no-dht", "--port", "0", "-o", mnt, "--peer", "127.0.0.1:"+port, "big.torrent")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("get did not exit within 10 s of a write error:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("get exited with %v, want a failure:\n%s", err, stderr.String())
	}
	var last string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if strings.HasPrefix(line, "sower: ") {
			last = line
		}
	}
	if !strings.Contains(last, filepath.Join(mnt, "big")+string(filepath.Separator)) || !strings.Contains(last, cause) {
		t.Fatalf("error line %q does not name the file under %s and %q; stderr:\n%s", last, mnt, cause, stderr.String())
	}
	t.Logf("get said: %s", last)

	// Nothing was written outside the folder: the test's folder holds what
	// it held, and the mount point itself is empty once unmounted.
	unmount()
	var got []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	want := []string{"big.torrent", "mnt", "src", "src/big", "src/big/a.bin", "src/big/b.bin"}
	if !slices.Equal(got, want) {
		t.Fatalf("files after the run: %q, want %q", got, want)
	}
}
