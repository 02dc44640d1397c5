//go:build linux

package metainfo

import (
	"context"
	"crypto/sha1"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
)

func TestBuildRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"ok": {1}})
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), dir, BuildOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "pipe")+": special file") {
		t.Fatalf("fifo inside: err = %v", err)
	}
	_, err = Build(context.Background(), filepath.Join(dir, "pipe"), BuildOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "not a regular file or folder") {
		t.Fatalf("fifo as root: err = %v", err)
	}
}

// TestMappedFileShrinks checks that a mapped file truncated during hashing
// gives an error rather than crashing the process.
func TestMappedFileShrinks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeTree(t, filepath.Dir(p), map[string][]byte{"f": randBytes(40, 1<<20)})
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := mapWindow(f, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer unmapWindow(b)
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	c := &chunk{data: b, mapped: true, path: p}
	errc := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		var out [20]byte
		errc <- hashSegment(sha1.New(), segment{c: c, data: b, end: true}, &out, 1<<20)
	}()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), p+": file changed while hashing") {
		t.Fatalf("err = %v", err)
	}
}
