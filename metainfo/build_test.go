package metainfo

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTree creates files (slash-separated relative path -> contents)
// under dir.
func writeTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// checkBuilt verifies a built torrent against an independent hash of the
// expected piece-space contents and round-trips it through Encode/Parse.
func checkBuilt(t *testing.T, m *MetaInfo, wantData []byte) {
	t.Helper()
	pl := int(m.Info.PieceLength)
	want := piecesFor(wantData, pl)
	var got bytes.Buffer
	for _, p := range m.Info.Pieces {
		got.Write(p[:])
	}
	if got.String() != want {
		t.Fatalf("piece hashes differ from an independent hash (%d pieces, want %d)", len(m.Info.Pieces), len(want)/20)
	}
	if m.Info.TotalLength() != int64(len(wantData)) {
		t.Fatalf("total %d, want %d", m.Info.TotalLength(), len(wantData))
	}
	if m.InfoHash != sha1.Sum(m.InfoBytes) {
		t.Fatal("InfoHash is not the SHA-1 of InfoBytes")
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(out)
	if err != nil {
		t.Fatalf("built torrent does not parse: %v", err)
	}
	if m2.InfoHash != m.InfoHash || !reflect.DeepEqual(m2.Info, m.Info) {
		t.Fatalf("round trip changed the info:\n%+v\n%+v", m.Info, m2.Info)
	}
	if !bytes.Equal(m2.InfoBytes, m.InfoBytes) {
		t.Fatal("round trip changed InfoBytes")
	}
}

func TestBuildLayouts(t *testing.T) {
	const pl = 16 << 10
	cases := []struct {
		name  string
		files map[string][]byte // relative to the torrent root folder
		order []string          // expected piece-space order
	}{
		{"one file in a folder", map[string][]byte{"a": randBytes(1, 50000)}, []string{"a"}},
		{"nested folders", map[string][]byte{
			"z.txt":         randBytes(2, 1000),
			"a/b/c/deep":    randBytes(3, 40000),
			"a/b.txt":       randBytes(4, 17),
			"a.txt":         randBytes(5, 3),
			"a/b/c/deep2":   randBytes(6, 16384),
			"m/empty":       {},
			"m/after-empty": randBytes(7, 99),
		}, []string{"a/b/c/deep", "a/b/c/deep2", "a/b.txt", "a.txt", "m/after-empty", "m/empty", "z.txt"}},
		{"exact multiple of piece length", map[string][]byte{"x": randBytes(8, 2*pl), "y": randBytes(9, pl)}, []string{"x", "y"}},
		{"files smaller than a piece", map[string][]byte{"1": {1}, "2": {2, 2}, "3": {3, 3, 3}}, []string{"1", "2", "3"}},
		{"unicode names", map[string][]byte{"日本語/ファイル.txt": randBytes(10, 3000), "café/naïve résumé": randBytes(11, 20000), "emoji 🎉": {9}}, []string{"café/naïve résumé", "emoji 🎉", "日本語/ファイル.txt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			writeTree(t, root, c.files)
			if err := os.MkdirAll(filepath.Join(root, "empty-folder", "inner"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{1, 3} {
				m, err := Build(context.Background(), root, BuildOptions{PieceLength: pl, NoDate: true, Workers: workers}, nil)
				if err != nil {
					t.Fatal(err)
				}
				var all []byte
				var gotOrder []string
				for _, f := range m.Info.Files {
					gotOrder = append(gotOrder, strings.Join(f.Path, "/"))
				}
				for _, p := range c.order {
					all = append(all, c.files[p]...)
				}
				if !reflect.DeepEqual(gotOrder, c.order) {
					t.Fatalf("file order %q, want %q", gotOrder, c.order)
				}
				if m.Info.Name != "root" || !m.Info.IsMultiFile() {
					t.Fatalf("info %+v", m.Info)
				}
				checkBuilt(t, m, all)
			}
		})
	}
}

func TestBuildSingleFile(t *testing.T) {
	dir := t.TempDir()
	data := randBytes(12, 100000)
	p := filepath.Join(dir, "single file.bin")
	writeTree(t, dir, map[string][]byte{"single file.bin": data})
	var calls int
	var last [2]int64
	m, err := Build(context.Background(), p, BuildOptions{}, func(h, total int64) { calls++; last = [2]int64{h, total} })
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.IsMultiFile() || m.Info.Name != "single file.bin" || m.Info.Length != 100000 {
		t.Fatalf("info %+v", m.Info)
	}
	if m.Info.PieceLength != AutoPieceLength(100000) || m.CreationDate.IsZero() {
		t.Fatalf("piece length %d, date %v", m.Info.PieceLength, m.CreationDate)
	}
	if calls == 0 || last != [2]int64{100000, 100000} {
		t.Fatalf("progress: %d calls, last %v", calls, last)
	}
	checkBuilt(t, m, data)
}

// TestBuildLargePieces covers pieces larger than the reader's chunk, whose
// hashes are fed from several chunks, and many small pieces per chunk.
func TestBuildLargePieces(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"a": randBytes(13, 9<<20+7), "b": randBytes(14, 3<<20), "c": randBytes(15, 5)}
	writeTree(t, dir, files)
	all := append(append(append([]byte{}, files["a"]...), files["b"]...), files["c"]...)
	for _, pl := range []int64{8 << 20, 16 << 10, 1 << 20, 3 << 20} {
		m, err := Build(context.Background(), dir, BuildOptions{PieceLength: pl, Workers: 2, NoDate: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkBuilt(t, m, all)
	}
}

func TestBuildOptions(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"f": randBytes(16, 1000)})
	opts := BuildOptions{
		Trackers:  []string{"http://a.example/announce", "udp://b.example:6969"},
		WebSeeds:  []string{"https://mirror.example/pub/"},
		Private:   true,
		Comment:   "a comment",
		CreatedBy: "sower-test",
		DHTNodes:  []string{"127.0.0.1:6881", "[::1]:6882"},
		NoDate:    true,
	}
	m, err := Build(context.Background(), filepath.Join(dir, "f"), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Announce != opts.Trackers[0] || !reflect.DeepEqual(m2.Tiers(), [][]string{{opts.Trackers[0]}, {opts.Trackers[1]}}) {
		t.Errorf("trackers: %q %v", m2.Announce, m2.Tiers())
	}
	if !reflect.DeepEqual(m2.WebSeeds(), opts.WebSeeds) || !m2.Info.Private || m2.Comment != opts.Comment ||
		m2.CreatedBy != opts.CreatedBy || !reflect.DeepEqual(m2.Nodes, opts.DHTNodes) || !m2.CreationDate.IsZero() {
		t.Errorf("round trip: %+v", m2)
	}
	// Reproducible: the same input gives the same bytes.
	m3, err := Build(context.Background(), filepath.Join(dir, "f"), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	out3, _ := m3.Encode()
	if !bytes.Equal(out, out3) {
		t.Error("two builds with NoDate differ")
	}
	// A single tracker gives no announce-list.
	m4, err := Build(context.Background(), filepath.Join(dir, "f"), BuildOptions{Trackers: []string{"http://a/ann"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m4.AnnounceList != nil || m4.Announce != "http://a/ann" {
		t.Errorf("single tracker: %q %v", m4.Announce, m4.AnnounceList)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"f": {1}, "empties/a": {}, "empties/b": {}})
	if err := os.MkdirAll(filepath.Join(dir, "nothing", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "f")
	cases := []struct {
		name, root string
		opts       BuildOptions
		want       string
	}{
		{"missing", filepath.Join(dir, "nope"), BuildOptions{}, "no such file"},
		{"all files empty", filepath.Join(dir, "empties"), BuildOptions{}, "all files are empty"},
		{"only empty folders", filepath.Join(dir, "nothing"), BuildOptions{}, "no files to share"},
		{"negative piece length", f, BuildOptions{PieceLength: -1}, "piece length -1 out of range"},
		{"huge piece length", f, BuildOptions{PieceLength: 1 << 30}, "out of range"},
		{"bad tracker scheme", f, BuildOptions{Trackers: []string{"ftp://x/a"}}, "tracker \"ftp://x/a\": scheme must be one of"},
		{"tracker without host", f, BuildOptions{Trackers: []string{"http:///a"}}, "no host"},
		{"bad web seed", f, BuildOptions{WebSeeds: []string{"not a url"}}, "web seed"},
		{"bad DHT node", f, BuildOptions{DHTNodes: []string{"host"}}, "DHT node \"host\""},
		{"DHT node port 0", f, BuildOptions{DHTNodes: []string{"host:0"}}, "port 1..65535"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(context.Background(), c.root, c.opts, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestBuildSkipsSymlinks(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	writeTree(t, root, map[string][]byte{"real": randBytes(17, 100)})
	writeTree(t, dir, map[string][]byte{"outside": randBytes(18, 100)})
	if err := os.Symlink(filepath.Join(dir, "outside"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "dirlink")); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	m, err := Build(context.Background(), root, BuildOptions{Logger: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Info.Files) != 1 || m.Info.Files[0].Path[0] != "real" {
		t.Fatalf("files %+v", m.Info.Files)
	}
	for _, l := range []string{"link", "dirlink"} {
		if !strings.Contains(logBuf.String(), filepath.Join(root, l)) {
			t.Errorf("no warning naming %s in %q", l, logBuf.String())
		}
	}
	// A symlink given as the root is followed: the user named it.
	m, err = Build(context.Background(), filepath.Join(root, "link"), BuildOptions{Logger: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Name != "link" || m.Info.Length != 100 {
		t.Fatalf("root symlink: %+v", m.Info)
	}
}

func TestBuildCanceled(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"big": make([]byte, 24<<20)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Build(ctx, dir, BuildOptions{PieceLength: 16 << 10}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// Cancel mid-way from the progress callback.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	_, err = Build(ctx, dir, BuildOptions{PieceLength: 16 << 10, Workers: 1}, func(h, total int64) {
		if h < total {
			cancel()
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestAutoPieceLength(t *testing.T) {
	for _, c := range []struct{ total, want int64 }{
		{1, 16 << 10},
		{2000 * 16 << 10, 16 << 10},
		{2000*16<<10 + 1, 32 << 10},
		{2 << 30, 2 << 20},
		{1 << 40, 16 << 20},
	} {
		if got := AutoPieceLength(c.total); got != c.want {
			t.Errorf("AutoPieceLength(%d) = %d, want %d", c.total, got, c.want)
		}
	}
	for total := int64(64 << 20); total < 16<<30; total = total*3/2 + 12345 {
		n := (total + AutoPieceLength(total) - 1) / AutoPieceLength(total)
		if n < 1000 || n > 2000 {
			t.Errorf("total %d gives %d pieces", total, n)
		}
	}
}

// BenchmarkBuild measures end-to-end hashing throughput of Build on a
// 256 MiB file (warm page cache after the first iteration).
func BenchmarkBuild(b *testing.B) {
	const size = 256 << 20
	p := filepath.Join(b.TempDir(), "data")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	chunk := randBytes(19, 1<<20)
	for range size / len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Build(context.Background(), p, BuildOptions{NoDate: true}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSourceReaderModes checks that mapping and reading yield the same
// stream, with the end reported on the last chunk only.
func TestSourceReaderModes(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{0, 5, mapThreshold + 3, 0, 100, 3*readChunk + 17, mapThreshold - 1, 0}
	var files []srcFile
	var want []byte
	for i, n := range sizes {
		data := randBytes(uint64(50+i), n)
		name := string(rune('a' + i))
		writeTree(t, dir, map[string][]byte{name: data})
		files = append(files, srcFile{abs: filepath.Join(dir, name), rel: []string{name}, size: int64(n)})
		want = append(want, data...)
	}
	for _, useMap := range []bool{false, mmapSupported} {
		r := &sourceReader{files: files, bufSize: readChunk, useMap: useMap}
		var got []byte
		for i := 0; ; i++ {
			c := &chunk{}
			eof, err := r.next(c)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, c.data...)
			c.unmap()
			if eof {
				break
			}
			if i > 100 {
				t.Fatal("no end")
			}
		}
		r.close()
		if !bytes.Equal(got, want) {
			t.Fatalf("useMap=%v: stream differs (%d bytes, want %d)", useMap, len(got), len(want))
		}
	}
	// A file that shrank since it was listed.
	r := &sourceReader{files: []srcFile{{abs: files[1].abs, size: 50}}, bufSize: readChunk}
	if _, err := r.next(&chunk{}); err == nil || !strings.Contains(err.Error(), "file shrank while hashing") {
		t.Fatalf("shrunk file: err = %v", err)
	}
}
