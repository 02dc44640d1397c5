package daemon

import (
	"path/filepath"
	"testing"
)

// TestFreeSpace checks the free-space probe behind the API's disk figure:
// a real folder has some, a missing one reports -1.
func TestFreeSpace(t *testing.T) {
	dir := t.TempDir()
	if n := freeSpace(dir); n <= 0 {
		t.Errorf("freeSpace(%q) = %d, want > 0", dir, n)
	}
	if n := freeSpace(filepath.Join(dir, "missing", "x")); n != -1 {
		t.Errorf("freeSpace of a missing folder = %d, want -1", n)
	}
}
