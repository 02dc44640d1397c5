package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDropBehind writes three times dropLag through WriteVecAt, as the
// engine does, and asks the kernel (mincore) which pages of the file are
// cached: with DropBehind everything but the last dropLag has left the
// page cache; without it everything is still there. The data reads back
// intact either way.
func TestDropBehind(t *testing.T) {
	const piece = 1 << 20
	const size = 3 * dropLag
	var st unix.Statfs_t
	dir := t.TempDir()
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skip("tmpfs keeps its pages in memory: nothing to drop")
	}
	l := mustLayout(t, []File{{Path: "big", Length: size}}, piece)
	pieceData := func(k int) []byte { return bytes.Repeat([]byte{byte(k), byte(k >> 8), 0x5a, 0xa5}, piece/4) }
	for _, behind := range []bool{false, true} {
		root := filepath.Join(dir, map[bool]string{false: "kept", true: "dropped"}[behind])
		d := openDir(t, root, l, Options{DropBehind: behind})
		for k := 0; k < size/piece; k++ {
			if _, err := d.WriteVecAt(split(pieceData(k), 16384), int64(k*piece)); err != nil {
				t.Fatal(err)
			}
		}
		old, recent := residentShare(t, filepath.Join(root, "big"), 0, size-dropLag), residentShare(t, filepath.Join(root, "big"), size-dropLag, dropLag)
		t.Logf("DropBehind %v: %.0f %% of the older data cached, %.0f %% of the last %d MiB", behind, 100*old, 100*recent, dropLag>>20)
		if behind && old > 0.05 {
			t.Errorf("DropBehind: %.0f %% of the data more than %d MiB behind is still cached", 100*old, dropLag>>20)
		}
		if !behind && old < 0.95 {
			t.Errorf("without DropBehind only %.0f %% of the written data is cached; the check cannot tell", 100*old)
		}
		if recent < 0.95 {
			t.Errorf("DropBehind %v: only %.0f %% of the last %d MiB is cached", behind, 100*recent, dropLag>>20)
		}
		got := make([]byte, piece)
		for _, k := range []int{0, size / piece / 2, size/piece - 1} {
			if _, err := d.ReadAt(got, int64(k*piece)); err != nil || !bytes.Equal(got, pieceData(k)) {
				t.Fatalf("DropBehind %v: piece %d reads back wrong (err %v)", behind, k, err)
			}
		}
	}
}

// residentShare returns the share of the pages of path in [off, off+n)
// that are in the page cache.
func residentShare(t *testing.T, path string, off, n int64) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (n+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec))
}
