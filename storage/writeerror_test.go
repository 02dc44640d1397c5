package storage

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDirWriteErrorNamesPath: a failed write names the file's OS path and
// the bare cause, which errors.Is still finds, whether it is creating the
// file's folder, writing through one buffer or through a vector.
func TestDirWriteErrorNamesPath(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir, threeFiles(t), Options{})
	// A file where t/sub should be a folder.
	if err := os.MkdirAll(filepath.Join(dir, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t", "sub"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := d.WriteAt(make([]byte, 10), 700) // in t/sub/b
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		t.Fatalf("write under a file: %v, want a system error", err)
	}
	want := "storage: creating the folder of " + filepath.Join(dir, "t", "sub", "b") + ": " + errno.Error()
	if err.Error() != want {
		t.Fatalf("write under a file: %q, want %q", err, want)
	}
}

// TestDirWriteErrorFullDisk fills a small tmpfs: the error names the file
// being written and says the disk is full.
func TestDirWriteErrorFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	}()
	l := mustLayout(t, []File{{Path: "x/big", Length: 4 << 20}}, 256<<10)
	d, err := OpenDir(mnt, l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	buf := randBytes(1, 256<<10)
	for _, vec := range []bool{false, true} {
		var err error
		for off := int64(0); off < l.TotalLength() && err == nil; off += int64(len(buf)) {
			if vec {
				_, err = WriteVec(d, [][]byte{buf[:100<<10], buf[100<<10:]}, off)
			} else {
				_, err = d.WriteAt(buf, off)
			}
		}
		if !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), "storage: writing "+filepath.Join(mnt, "x", "big")+": ") {
			t.Fatalf("vectored %v: filling the disk: %v, want ENOSPC naming %s", vec, err, filepath.Join(mnt, "x", "big"))
		}
		t.Logf("vectored %v: %v", vec, err)
	}
}
