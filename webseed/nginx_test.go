package webseed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/storage"
)

// diskTorrent writes files (paths relative to dir/folder, lengths) with
// random content and returns the matching testTorrent. For a single-file
// torrent folder is "" and there is one file, whose name is the torrent's.
func diskTorrent(t testing.TB, dir, folder string, pieceLen int64, files map[string]int64) *testTorrent {
	t.Helper()
	tt := &testTorrent{content: make(map[string][]byte), multiFile: folder != "", pieceLen: pieceLen}
	copy(tt.infoHash[:], "nginx web seed test!")
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	// A fixed order; the byte space follows the file list.
	for i := range paths {
		for j := i + 1; j < len(paths); j++ {
			if paths[j] < paths[i] {
				paths[i], paths[j] = paths[j], paths[i]
			}
		}
	}
	for _, p := range paths {
		full := filepath.Join(dir, folder, filepath.FromSlash(p))
		testpeers.RandomFile(t, full, files[p])
		data, err := os.ReadFile(full)
		if err != nil {
			t.Fatal(err)
		}
		path := p
		if tt.multiFile {
			path = folder + "/" + p
			tt.name = folder
		} else {
			tt.name = p
		}
		tt.files = append(tt.files, storage.File{Path: path, Length: files[p]})
		tt.content[path] = data
		tt.data = append(tt.data, data...)
	}
	return tt
}

// fetchParallel fetches every piece with workers Fetch calls at once and
// compares the data.
func fetchParallel(t *testing.T, s *Source, tt *testTorrent, workers int) {
	t.Helper()
	ctx := testContext(t)
	total := int64(len(tt.data))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			buf := make([]byte, tt.pieceLen)
			for {
				off := next.Add(tt.pieceLen) - tt.pieceLen
				if off >= total {
					return
				}
				b := buf[:min(tt.pieceLen, total-off)]
				if err := s.Fetch(ctx, off, b); err != nil {
					errs <- fmt.Errorf("piece at %d: %w", off, err)
					return
				}
				if !bytes.Equal(b, tt.data[off:off+int64(len(b))]) {
					errs <- fmt.Errorf("piece at %d: data differs", off)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// accessLog reads nginx's access log: per request, its connection number
// and status.
func accessLog(t *testing.T, n *testpeers.Nginx) (conns map[string]int, statuses map[string]int) {
	t.Helper()
	data, err := os.ReadFile(n.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	conns, statuses = make(map[string]int), make(map[string]int)
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 7 {
			t.Fatalf("access log line %q: want %s", line, testpeers.NginxLogFormat)
		}
		conns[f[0]]++
		statuses[f[len(f)-2]]++
	}
	return conns, statuses
}

func TestNginxSingleAndMultiFile(t *testing.T) {
	root := t.TempDir()
	const pieceLen = 256 << 10
	single := diskTorrent(t, filepath.Join(root, "pub"), "", pieceLen, map[string]int64{"single é file.bin": 3<<20 + 12345})
	multi := diskTorrent(t, filepath.Join(root, "pub"), "multi torrent é", pieceLen, map[string]int64{
		"a.bin":                  100_000,
		"b dir/c+d#1.bin":        (1 << 20) + 7,
		"b dir/e f/ünï cödé.bin": 300_000,
		"small.txt":              17,
		"z.bin":                  2 << 20,
	})
	n := testpeers.StartNginx(t, root)

	const maxConns = 3
	for _, tc := range []struct {
		name string
		tt   *testTorrent
		url  string
	}{
		{"single, URL is the file", single, n.URL + "pub/single%20%C3%A9%20file.bin"},
		{"single, URL is a folder", single, n.URL + "pub/"},
		{"multi", multi, n.URL + "pub"},
	} {
		s := tc.tt.source(t, URLList, tc.url, Config{MaxConns: maxConns})
		fetchParallel(t, s, tc.tt, 2*maxConns)
		// A run of pieces, across files, in one call.
		buf := make([]byte, 8*pieceLen)
		if err := s.Fetch(testContext(t), pieceLen, buf[:min(int64(len(buf)), int64(len(tc.tt.data))-pieceLen)]); err != nil {
			t.Errorf("%s: run of pieces: %v", tc.name, err)
		}
	}
	conns, statuses := accessLog(t, n)
	if len(statuses) != 1 || statuses["206"] == 0 {
		t.Errorf("statuses %v, want only 206", statuses)
	}
	// Each source keeps at most maxConns connections alive: three sources.
	if len(conns) > 3*maxConns {
		t.Errorf("%d connections for %d requests, want at most %d (keep-alive)", len(conns), statuses["206"], 3*maxConns)
	}
}

func TestNginxMisbehaving(t *testing.T) {
	root := t.TempDir()
	multi := diskTorrent(t, root, "t", 64<<10, map[string]int64{"a.bin": 100_000, "gone.bin": 100_000, "big.bin": 3 << 20})
	if err := os.Remove(filepath.Join(root, "t", "gone.bin")); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)

	// A file missing on the server: 404 for its pieces only. The files
	// are a.bin, big.bin, gone.bin in this order.
	n := testpeers.StartNginx(t, root, "location = /loop { return 302 /loop; }")
	s := multi.source(t, URLList, n.URL, Config{})
	buf := make([]byte, 64<<10)
	if err := s.Fetch(ctx, 0, buf); err != nil || !bytes.Equal(buf, multi.data[:len(buf)]) {
		t.Errorf("a.bin: %v", err)
	}
	var he *HTTPError
	gone := int64(100_000 + 3<<20)
	if err := s.Fetch(ctx, gone, buf); !errors.As(err, &he) || he.Status != http.StatusNotFound || !strings.HasSuffix(he.URL, "/t/gone.bin") {
		t.Errorf("gone.bin: %v, want *HTTPError 404", err)
	}

	// A redirect loop.
	loop := newTorrent(t, "loop", false, 1024, spec{path: "loop", length: 4096})
	s = loop.source(t, URLList, n.URL+"loop", Config{})
	if err := s.Fetch(ctx, 0, buf[:1024]); !errors.Is(err, ErrRedirectLoop) {
		t.Errorf("redirect loop: %v, want ErrRedirectLoop", err)
	}

	// Range ignored (max_ranges 0): the start of a small file is taken,
	// the middle of a large one is ErrNoRange.
	n = testpeers.StartNginx(t, root, "max_ranges 0;")
	s = multi.source(t, URLList, n.URL, Config{})
	if err := s.Fetch(ctx, 0, buf); err != nil || !bytes.Equal(buf, multi.data[:len(buf)]) {
		t.Errorf("small file without Range: %v", err)
	}
	if err := s.Fetch(ctx, 1<<20, buf); !errors.Is(err, ErrNoRange) {
		t.Errorf("large file without Range: %v, want ErrNoRange", err)
	}
}

// BenchmarkFetch downloads a 256 MiB file from a loopback nginx, in runs of
// 16 pieces of 256 KiB, with 1 or MaxConns requests in flight.
func BenchmarkFetch(b *testing.B) {
	const size = 256 << 20
	const pieceLen = 256 << 10
	const span = 16 * pieceLen
	root := b.TempDir()
	testpeers.RandomFile(b, filepath.Join(root, "bench.bin"), size)
	n := testpeers.StartNginx(b, root)
	tt := &testTorrent{name: "bench.bin", pieceLen: pieceLen,
		files: []storage.File{{Path: "bench.bin", Length: size}}, data: make([]byte, size)}
	// The ceiling: one plain GET of the whole file, read into a buffer.
	b.Run("plain-GET", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		defer client.CloseIdleConnections()
		buf := make([]byte, span)
		b.SetBytes(size)
		for b.Loop() {
			resp, err := client.Get(n.URL + "bench.bin")
			if err != nil {
				b.Fatal(err)
			}
			var got int64
			for {
				k, err := io.ReadFull(resp.Body, buf)
				got += int64(k)
				if err != nil {
					break
				}
			}
			resp.Body.Close()
			if got != size {
				b.Fatalf("plain GET: %d bytes, want %d", got, size)
			}
		}
	})
	for _, conns := range []int{1, DefaultMaxConns} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			s, err := New(URLList, n.URL, tt.name, tt.files, false, pieceLen, size, tt.infoHash, Config{MaxConns: conns})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			bufs := make([][]byte, conns)
			for i := range bufs {
				bufs[i] = make([]byte, span)
			}
			b.SetBytes(size)
			for b.Loop() {
				var next atomic.Int64
				var wg sync.WaitGroup
				var failed atomic.Value
				for w := range conns {
					wg.Go(func() {
						for {
							off := next.Add(span) - span
							if off >= size {
								return
							}
							if err := s.Fetch(b.Context(), off, bufs[w]); err != nil {
								failed.Store(err)
								return
							}
						}
					})
				}
				wg.Wait()
				if err, ok := failed.Load().(error); ok {
					b.Fatal(err)
				}
			}
		})
	}
}
