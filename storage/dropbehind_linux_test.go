package storage

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDropBehind writes three times dropLag through WriteVecAt, as the
// engine does, and asks the kernel (mincore) which pages of the file are
// cached. When the dropper finds fresh pages expensive (forced here by its
// threshold), it decides after the first dropLag bytes, which stay
// cached, and then drops all but the last dropLag: the middle third has
// left the page cache. When it finds them cheap, and without DropBehind,
// everything is still there. The data reads back intact in every case.
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
	for _, tc := range []struct {
		name    string
		on      bool
		maxCost float64
		dropped bool
	}{
		{"off", false, dropCost, false},
		{"cheap pages", true, math.Inf(1), false},
		{"expensive pages", true, -1, true},
	} {
		root := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		d := openDir(t, root, l, Options{DropBehind: tc.on})
		d.behind.maxCost = tc.maxCost
		for k := 0; k < size/piece; k++ {
			if _, err := d.WriteVecAt(split(pieceData(k), 16384), int64(k*piece)); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(root, "big")
		var share [3]float64 // cached, per third of the file
		for i := range share {
			share[i] = residentShare(t, path, int64(i)*dropLag, dropLag)
		}
		t.Logf("%s: cached share of each third: %.2f %.2f %.2f", tc.name, share[0], share[1], share[2])
		for i, got := range share {
			if dropped := tc.dropped && i == 1; dropped && got > 0.05 || !dropped && got < 0.95 {
				t.Errorf("%s: %.0f %% of third %d is cached, want it dropped: %v", tc.name, 100*got, i+1, dropped)
			}
		}
		got := make([]byte, piece)
		for _, k := range []int{0, size / piece / 2, size/piece - 1} {
			if _, err := d.ReadAt(got, int64(k*piece)); err != nil || !bytes.Equal(got, pieceData(k)) {
				t.Fatalf("%s: piece %d reads back wrong (err %v)", tc.name, k, err)
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
