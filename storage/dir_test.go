package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// threeFiles has a piece spanning all three files and a short last piece.
func threeFiles(t testing.TB) *Layout {
	return mustLayout(t, []File{
		{Path: "t/a", Length: 700},
		{Path: "t/sub/b", Length: 300},
		{Path: "t/c", Length: 1500},
	}, 1024)
}

func openDir(t testing.TB, dir string, l *Layout, opts Options) *Dir {
	t.Helper()
	d, err := OpenDir(dir, l, opts)
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// roundTrip writes data in uneven chunks that cross file and piece
// boundaries, then reads it back in different uneven chunks.
func roundTrip(t *testing.T, s Storage, data []byte) {
	t.Helper()
	for off, step := 0, 1; off < len(data); step = step*3%1013 + 1 {
		end := min(off+step, len(data))
		if n, err := s.WriteAt(data[off:end], int64(off)); err != nil || n != end-off {
			t.Fatalf("WriteAt(%d..%d) = %d, %v", off, end, n, err)
		}
		off = end
	}
	got := make([]byte, len(data))
	for off, step := 0, 7; off < len(data); step = step*5%997 + 1 {
		end := min(off+step, len(data))
		if n, err := s.ReadAt(got[off:end], int64(off)); err != nil || n != end-off {
			t.Fatalf("ReadAt(%d..%d) = %d, %v", off, end, n, err)
		}
		off = end
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back different data")
	}
	// Reading across the end returns what is there and io.EOF.
	buf := make([]byte, 10)
	if n, err := s.ReadAt(buf, int64(len(data)-4)); n != 4 || err != io.EOF || !bytes.Equal(buf[:4], data[len(data)-4:]) {
		t.Fatalf("ReadAt across end = %d, %v", n, err)
	}
	if _, err := s.WriteAt(buf, int64(len(data)-4)); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt across end: %v", err)
	}
	if _, err := s.WriteAt(buf, -1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt at -1: %v", err)
	}
}

func TestDirRoundTrip(t *testing.T) {
	l := threeFiles(t)
	dir := t.TempDir()
	d := openDir(t, dir, l, Options{})
	data := randBytes(1, l.TotalLength())
	roundTrip(t, d, data)
	// The files on disk hold exactly their part of the byte space.
	for i, f := range l.Files() {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		off := l.FileOffset(i)
		if !bytes.Equal(got, data[off:off+f.Length]) {
			t.Errorf("%s on disk differs", f.Path)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := d.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close: %v", err)
	}
	if _, err := d.WriteAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteAt after Close: %v", err)
	}
	if err := d.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v", err)
	}
}

func TestMemoryRoundTrip(t *testing.T) {
	l := threeFiles(t)
	m := NewMemory(l)
	roundTrip(t, m, randBytes(2, l.TotalLength()))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close: %v", err)
	}
}

func TestMemoryLazy(t *testing.T) {
	l := mustLayout(t, []File{{Path: "huge", Length: 1 << 50}}, 1<<20)
	m := NewMemory(l) // must not allocate a petabyte
	if has, _ := m.HasData(0, l.TotalLength()); has {
		t.Fatal("empty memory has data")
	}
	if _, err := m.WriteAt([]byte("hi"), 5<<20+3); err != nil {
		t.Fatal(err)
	}
	if has, _ := m.HasData(5<<20, 1<<20); !has {
		t.Error("written piece has no data")
	}
	if has, _ := m.HasData(4<<20, 1<<20); has {
		t.Error("unwritten piece has data")
	}
	buf := make([]byte, 4)
	if _, err := m.ReadAt(buf, 5<<20+2); err != nil || string(buf) != "\x00hi\x00" {
		t.Errorf("ReadAt = %q, %v", buf, err)
	}
	if _, err := m.ReadAt(buf, 1<<20); !errors.Is(err, ErrMissing) {
		t.Errorf("ReadAt of unwritten piece: %v", err)
	}
}

func TestPaddingNeverStored(t *testing.T) {
	l := mustLayout(t, []File{{Path: "t/a", Length: 5}, {Path: ".pad/3", Length: 3, Padding: true}, {Path: "t/b", Length: 8}}, 8)
	dir := t.TempDir()
	data := bytes.Repeat([]byte{0xAB}, 16)
	for _, s := range []Storage{openDir(t, dir, l, Options{}), NewMemory(l)} {
		if _, err := s.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 16)
		if _, err := s.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		want := append(append(bytes.Repeat([]byte{0xAB}, 5), 0, 0, 0), bytes.Repeat([]byte{0xAB}, 8)...)
		if !bytes.Equal(got, want) {
			t.Errorf("%T read %x, want %x", s, got, want)
		}
		// A region of only padding holds no data.
		if has, err := s.(DataProber).HasData(5, 3); has || err != nil {
			t.Errorf("%T: padding HasData = %v, %v", s, has, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".pad")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("padding created on disk: %v", err)
	}
}

func TestDirLazyCreation(t *testing.T) {
	l := mustLayout(t, []File{
		{Path: "t/a", Length: 100},
		{Path: "t/empty", Length: 0},
		{Path: "t/deep/er/b", Length: 100},
		{Path: "t/skip/empty", Length: 0},
	}, 64)
	dir := t.TempDir()
	d := openDir(t, dir, l, Options{Wanted: []bool{true, true, true, false}})
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join(dir, p))
		return err == nil
	}
	if !exists("t/empty") {
		t.Error("wanted empty file not created at open")
	}
	if exists("t/skip") {
		t.Error("unwanted empty file created")
	}
	if exists("t/a") || exists("t/deep") {
		t.Error("files created before any write")
	}
	buf := make([]byte, 10)
	if _, err := d.ReadAt(buf, 0); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), `"t/a" does not exist`) {
		t.Errorf("read of missing file: %v", err)
	}
	if has, err := d.HasData(0, l.TotalLength()); has || err != nil {
		t.Errorf("HasData with no files = %v, %v", has, err)
	}
	if _, err := d.WriteAt([]byte("x"), 10); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "t/a"))
	if err != nil || st.Size() != 100 {
		t.Fatalf("t/a after first write: %v %v (want full length 100)", st, err)
	}
	if exists("t/deep") {
		t.Error("t/deep created by a write to t/a")
	}
	if has, err := d.HasData(0, 100); !has || err != nil {
		t.Errorf("HasData of written file = %v, %v", has, err)
	}
	if _, err := d.WriteAt([]byte("y"), 150); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "t/deep/er/b")); err != nil || st.Size() != 100 {
		t.Fatalf("nested file: %v %v", st, err)
	}
}

// TestDirHoles needs a file system that reports holes (ext4, xfs, btrfs,
// tmpfs); elsewhere HasData may conservatively report data.
func TestDirHoles(t *testing.T) {
	l := mustLayout(t, []File{{Path: "big", Length: 64 << 20}}, 1<<20)
	d := openDir(t, t.TempDir(), l, Options{})
	if _, err := d.WriteAt(make([]byte, 1<<20), 5<<20); err != nil {
		t.Fatal(err)
	}
	if has, err := d.HasData(5<<20, 1<<20); !has || err != nil {
		t.Fatalf("written piece: HasData = %v, %v", has, err)
	}
	has, err := d.HasData(40<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if has {
		t.Skip("file system does not report sparse holes")
	}
	// Holes read as zeros.
	buf := []byte{1, 2, 3}
	if _, err := d.ReadAt(buf, 40<<20); err != nil || !bytes.Equal(buf, []byte{0, 0, 0}) {
		t.Errorf("hole read %v, %v", buf, err)
	}
}

func TestDirTruncatedFile(t *testing.T) {
	l := threeFiles(t)
	dir := t.TempDir()
	d := openDir(t, dir, l, Options{})
	if _, err := d.WriteAt(randBytes(3, l.TotalLength()), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "t/c"), 100); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 50)
	n, err := d.ReadAt(buf, 1000+80)
	if !errors.Is(err, ErrMissing) || n != 20 || !strings.Contains(err.Error(), `"t/c" ends at 100`) {
		t.Errorf("read past truncation = %d, %v", n, err)
	}
	if has, err := d.HasData(1000+200, 300); has || err != nil {
		t.Errorf("HasData past truncation = %v, %v", has, err)
	}
}

func TestDirRejectsTraversalLayouts(t *testing.T) {
	// NewLayout refuses them, so OpenDir never sees them; each reason has
	// its own message (see TestValidatePathRejects).
	for _, p := range []string{"../x", "/abs", "t/../../x", "t//x", "t/./x", "t/x\x00"} {
		if _, err := NewLayout([]File{{Path: p, Length: 1}}, 4); !errors.Is(err, ErrBadPath) {
			t.Errorf("%q: %v", p, err)
		}
	}
}

func TestDirSymlinkEscape(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "dl")
	outside := filepath.Join(base, "outside")
	for _, p := range []string{filepath.Join(dir, "t"), outside} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"t/reldir": "../../outside",        // folder escaping by a relative link
		"t/absdir": outside,                // folder escaping by an absolute link
		"t/file":   "../../outside/victim", // the file itself is a link out
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Skipf("symlinks unsupported: %v", err)
		}
	}
	l := mustLayout(t, []File{
		{Path: "t/reldir/x", Length: 8},
		{Path: "t/absdir/y", Length: 8},
		{Path: "t/file", Length: 8},
	}, 8)
	d := openDir(t, dir, l, Options{})
	for i, f := range l.Files() {
		if _, err := d.WriteAt([]byte("GOTCHA!!"), l.FileOffset(i)); err == nil {
			t.Errorf("write through %s escaped", f.Path)
		}
		if _, err := d.ReadAt(make([]byte, 8), l.FileOffset(i)); err == nil {
			t.Errorf("read through %s escaped", f.Path)
		}
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Errorf("victim changed to %q", got)
	}
	for _, p := range []string{"x", "y"} {
		if _, err := os.Stat(filepath.Join(outside, p)); err == nil {
			t.Errorf("created %s outside the folder", p)
		}
	}
	// A link that stays inside the folder is fine.
	if err := os.MkdirAll(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../real", filepath.Join(dir, "t", "inside")); err != nil {
		t.Fatal(err)
	}
	l2 := mustLayout(t, []File{{Path: "t/inside/z", Length: 4}}, 4)
	d2 := openDir(t, dir, l2, Options{})
	if _, err := d2.WriteAt([]byte("okay"), 0); err != nil {
		t.Errorf("write through inside link: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "real", "z")); string(got) != "okay" {
		t.Errorf("inside link target holds %q", got)
	}
}

func TestDirNotRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "t", "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := mustLayout(t, []File{{Path: "t/a", Length: 4}}, 4)
	d := openDir(t, dir, l, Options{})
	if _, err := d.WriteAt([]byte("data"), 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("write over a directory: %v", err)
	}
}

func TestOpenDirOptionErrors(t *testing.T) {
	l := threeFiles(t)
	if _, err := OpenDir(t.TempDir(), l, Options{Wanted: []bool{true}}); err == nil || !strings.Contains(err.Error(), "1 wanted flags for 3 files") {
		t.Errorf("short Wanted: %v", err)
	}
	if _, err := OpenDir(t.TempDir(), l, Options{MaxOpenFiles: -1}); err == nil {
		t.Error("negative MaxOpenFiles accepted")
	}
}

// wantedLayout: pieces of 4 bytes over a(6) b(9) c(6); b is unwanted.
//
//	p0 [0,4) a   p2 [8,12) b     p4 [16,20) c
//	p1 [4,8) a b p3 [12,16) b c  p5 [20,21) c
func wantedLayout(t testing.TB) (*Layout, Options) {
	l := mustLayout(t, []File{{Path: "t/a", Length: 6}, {Path: "t/b", Length: 9}, {Path: "t/c", Length: 6}}, 4)
	return l, Options{Wanted: []bool{true, false, true}}
}

func TestDirWantedMask(t *testing.T) {
	l, opts := wantedLayout(t)
	dir := t.TempDir()
	data := randBytes(4, l.TotalLength())
	hashes := pieceHashes(l, data)
	d := openDir(t, dir, l, opts)
	for _, p := range []int{0, 1, 3, 4, 5} { // the pieces touching wanted files
		off := l.PieceOffset(p)
		if _, err := d.WriteAt(data[off:off+l.PieceSize(p)], off); err != nil {
			t.Fatalf("piece %d: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "t/b")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unwanted file exists: %v", err)
	}
	parts := filepath.Join(dir, ".t.parts")
	if _, err := os.Stat(parts); err != nil {
		t.Fatalf("no parts file: %v", err)
	}
	// Boundary pieces read back whole and verify.
	for _, p := range []int{1, 3} {
		buf := make([]byte, l.PieceSize(p))
		if _, err := d.ReadAt(buf, l.PieceOffset(p)); err != nil || !bytes.Equal(buf, data[l.PieceOffset(p):][:len(buf)]) {
			t.Errorf("boundary piece %d: %v", p, err)
		}
	}
	if _, err := d.ReadAt(make([]byte, 4), 8); !errors.Is(err, ErrMissing) {
		t.Errorf("piece 2 never written: %v", err)
	}
	check := func(s Storage, want ...int) {
		t.Helper()
		got, err := Recheck(t.Context(), s, l, hashes, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		assertPieces(t, got, want...)
	}
	check(d, 0, 1, 3, 4, 5)
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()

	// The parts file survives a restart.
	d = openDir(t, dir, l, opts)
	check(d, 0, 1, 3, 4, 5)
	// A piece wholly inside the unwanted file also lands in the parts file.
	if _, err := d.WriteAt(data[8:12], 8); err != nil {
		t.Fatal(err)
	}
	check(d, 0, 1, 2, 3, 4, 5)
	if _, err := os.Stat(filepath.Join(dir, "t/b")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unwanted file exists: %v", err)
	}
	d.Close()

	// Wanting b later: its data is not in the file, so b's pieces are
	// absent and get downloaded again, while a's and c's own pieces stay.
	all := openDir(t, dir, l, Options{})
	check(all, 0, 4, 5)
}

func TestDirCustomPartsPath(t *testing.T) {
	l, opts := wantedLayout(t)
	dir := t.TempDir()
	opts.PartsPath = filepath.Join(t.TempDir(), "elsewhere.parts")
	d := openDir(t, dir, l, opts)
	if _, err := d.WriteAt(randBytes(5, 4), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(opts.PartsPath); err != nil {
		t.Errorf("custom parts file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".t.parts")); err == nil {
		t.Error("default parts file created too")
	}
}

func TestDirBadPartsFile(t *testing.T) {
	l, opts := wantedLayout(t)
	cases := []struct {
		name    string
		content []byte
		want    string
	}{
		{"magic", append([]byte("not-a-parts!"), make([]byte, 20)...), "bad magic"},
		{"piece length", append([]byte(partsMagic), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0), "piece length 9 at offset 16, torrent has 4"},
		{"short header", []byte("sower"), "reading header"},
		{"bad slot", append(append([]byte(partsMagic), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0, 0, 0, 0, 0, 0, 99, 1, 2, 3, 4), "slot header at offset 32 names piece 98 of 6"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ".t.parts"), c.content, 0o644); err != nil {
			t.Fatal(err)
		}
		d := openDir(t, dir, l, opts)
		_, err := d.ReadAt(make([]byte, 2), 6) // in b, so from the parts file
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestDirConcurrent hammers a small handle cache from several goroutines;
// run with -race.
func TestDirConcurrent(t *testing.T) {
	var files []File
	for i := range 12 {
		files = append(files, File{Path: fmt.Sprintf("t/f%02d", i), Length: 3000 + int64(i)*17})
	}
	l := mustLayout(t, files, 1024)
	d := openDir(t, t.TempDir(), l, Options{MaxOpenFiles: 3})
	data := randBytes(6, l.TotalLength())
	const workers = 6
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 1024)
			for p := w; p < l.NumPieces(); p += workers {
				off, n := l.PieceOffset(p), l.PieceSize(p)
				if _, err := d.WriteAt(data[off:off+n], off); err != nil {
					errs <- err
					return
				}
				// Re-read an earlier piece of another worker's stripe, which
				// may still be unwritten.
				q := max(0, p-3)
				if _, err := d.ReadAt(buf[:l.PieceSize(q)], l.PieceOffset(q)); err != nil && !errors.Is(err, ErrMissing) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("final read: %v, equal %v", err, bytes.Equal(got, data))
	}
	d.mu.Lock()
	open, listed := len(d.handles), d.lru.Len()
	d.mu.Unlock()
	if open > 3 || open != listed {
		t.Errorf("%d handles cached (%d listed), bound 3", open, listed)
	}
	if err := d.Sync(); err != nil {
		t.Errorf("Sync after evictions: %v", err)
	}
}

// TestDirEarlyWriteback checks that writeback is started every
// writebackEvery bytes only when asked for, and that the data is intact
// either way.
func TestDirEarlyWriteback(t *testing.T) {
	const size = 3*writebackEvery + 1<<20
	data := randBytes(11, size)
	l := mustLayout(t, []File{{Path: "big", Length: size}}, 1<<20)
	for _, early := range []bool{false, true} {
		// DropBehind that keeps the cache (cheap pages) leaves the early
		// writeback to EarlyWriteback, as get --sync sets both.
		d := openDir(t, t.TempDir(), l, Options{EarlyWriteback: early, DropBehind: true})
		d.behind.maxCost = math.Inf(1)
		for off := 0; off < size; off += 1 << 20 {
			if _, err := d.WriteAt(data[off:off+1<<20], int64(off)); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		n := d.writebacks
		d.mu.Unlock()
		if want := map[bool]int{false: 0, true: 3}[early]; n != want {
			t.Errorf("EarlyWriteback %v: writeback started %d times, want %d", early, n, want)
		}
		got := make([]byte, size)
		if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("EarlyWriteback %v: read back differs (err %v)", early, err)
		}
	}
}
