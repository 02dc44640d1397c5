package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sowerbt/sower/metainfo"
)

// multiFileTorrent builds a torrent of folder T with a.bin and sub/b.bin.
func multiFileTorrent(t *testing.T) *metainfo.MetaInfo {
	t.Helper()
	src := filepath.Join(t.TempDir(), "T")
	put(t, filepath.Join(src, "a.bin"), []byte("file a of the torrent"))
	put(t, filepath.Join(src, "sub", "b.bin"), []byte("file b of the torrent"))
	mi, err := metainfo.Build(context.Background(), src, metainfo.BuildOptions{PieceLength: 16 << 10, NoDate: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return mi
}

// put writes a file, creating its folders.
func put(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b)
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestRemoveDataNeverThroughSymlink: delete-local-data removes the
// torrent's own files and the folders it leaves empty, nothing else, and
// never follows a symbolic link placed in the download folder (before, a
// link where the torrent's folder T should be led os.Remove to the files
// of the same names in the folder it pointed to).
func TestRemoveDataNeverThroughSymlink(t *testing.T) {
	mi := multiFileTorrent(t)
	raw, err := mi.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, Config{DataDir: t.TempDir()})
	addTo := func(dir string) {
		t.Helper()
		if _, err := d.Add(context.Background(), AddRequest{Metainfo: raw, DownloadDir: dir, Paused: true}); err != nil {
			t.Fatal(err)
		}
	}

	// Its data in place, beside a file that is not the torrent's.
	dl := t.TempDir()
	put(t, filepath.Join(dl, "T", "a.bin"), []byte("x"))
	put(t, filepath.Join(dl, "T", "sub", "b.bin"), []byte("x"))
	put(t, filepath.Join(dl, ".T.parts"), []byte("x"))
	put(t, filepath.Join(dl, "T", "notes.txt"), []byte("the user's"))
	addTo(dl)
	if err := d.Remove(mi.InfoHash, true); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"T/a.bin", "T/sub/b.bin", "T/sub", ".T.parts"} {
		if exists(t, filepath.Join(dl, gone)) {
			t.Errorf("%s still there after remove with data", gone)
		}
	}
	if !exists(t, filepath.Join(dl, "T", "notes.txt")) {
		t.Error("a file that is not the torrent's was deleted")
	}

	// A link where the folder T should be, to a folder with files of the
	// same names; and in a second download folder, a real T whose sub is
	// a link.
	outside := t.TempDir()
	for _, p := range []string{"a.bin", "sub/b.bin", "b.bin"} {
		put(t, filepath.Join(outside, p), []byte("never Sower's"))
	}
	dl2 := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dl2, "T")); err != nil {
		t.Fatal(err)
	}
	addTo(dl2)
	if err := d.Remove(mi.InfoHash, true); err == nil {
		t.Error("remove through a link reported no file left in place")
	}
	dl3 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dl3, "T"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dl3, "T", "sub")); err != nil {
		t.Fatal(err)
	}
	addTo(dl3)
	d.Remove(mi.InfoHash, true)
	for _, p := range []string{"a.bin", "sub/b.bin", "b.bin"} {
		if !exists(t, filepath.Join(outside, p)) {
			t.Errorf("%s outside the download folder was deleted through a link", p)
		}
	}
	if !exists(t, filepath.Join(dl2, "T")) || !exists(t, filepath.Join(dl3, "T", "sub")) {
		t.Error("a link that is not the torrent's was deleted")
	}
}
