package storage

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteReservesOnlyWritten checks that reserving blocks before a
// write keeps the file sparse: after two 1 MiB pieces of a 64 MiB file,
// one written whole and one vectored, the file holds about 2 MiB of
// blocks, and both read back.
func TestWriteReservesOnlyWritten(t *testing.T) {
	const piece = 1 << 20
	dir := t.TempDir()
	l := mustLayout(t, []File{{Path: "big", Length: 64 << 20}}, piece)
	d := openDir(t, dir, l, Options{})
	a, b := randBytes(1, piece), randBytes(2, piece)
	if _, err := d.WriteAt(a, 5*piece); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteVecAt(split(b, 16384), 40*piece); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512
	if blocks < 2*piece || blocks > 3*piece {
		t.Errorf("file holds %d bytes of blocks after 2 MiB written, want about 2 MiB", blocks)
	}
	got := make([]byte, piece)
	for off, want := range map[int64][]byte{5 * piece: a, 40 * piece: b} {
		if _, err := d.ReadAt(got, off); err != nil || string(got) != string(want) {
			t.Fatalf("piece at %d reads back wrong (err %v)", off, err)
		}
	}
}
