package webseed

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/storage"
)

// testTorrent is a torrent's files with their content, and the whole byte
// space as BEP 3 hashes it.
type testTorrent struct {
	name      string
	files     []storage.File
	content   map[string][]byte // by path within the torrent (storage.File.Path)
	data      []byte
	multiFile bool
	pieceLen  int64
	infoHash  [20]byte
}

// spec is one file of a test torrent: path and length, or padding.
type spec struct {
	path    string
	length  int
	padding bool
}

func newTorrent(t testing.TB, name string, multiFile bool, pieceLen int64, specs ...spec) *testTorrent {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(specs)), uint64(pieceLen)))
	tt := &testTorrent{name: name, content: make(map[string][]byte), multiFile: multiFile, pieceLen: pieceLen}
	for i := range tt.infoHash {
		tt.infoHash[i] = byte(rng.UintN(256))
	}
	for _, s := range specs {
		b := make([]byte, s.length)
		if !s.padding {
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			tt.content[s.path] = b
		}
		tt.files = append(tt.files, storage.File{Path: s.path, Length: int64(s.length), Padding: s.padding})
		tt.data = append(tt.data, b...)
	}
	return tt
}

// multiTorrent crosses file boundaries inside pieces, and has a
// zero-length file, a BEP 47 pad file and names that need escaping.
func multiTorrent(t testing.TB) *testTorrent {
	return newTorrent(t, "my torrent", true, 1024,
		spec{path: "my torrent/a.bin", length: 1000},
		spec{path: "my torrent/empty", length: 0},
		spec{path: "my torrent/sub dir/b+c é#?.bin", length: 3000},
		spec{path: ".pad/500", length: 500, padding: true},
		spec{path: "my torrent/d.bin", length: 7000},
		spec{path: "my torrent/e.bin", length: 10},
	)
}

func (tt *testTorrent) source(t testing.TB, kind Kind, rawURL string, cfg Config) *Source {
	t.Helper()
	s, err := New(kind, rawURL, tt.name, tt.files, tt.multiFile, tt.pieceLen, int64(len(tt.data)), tt.infoHash, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// request is what a test server saw.
type request struct {
	path, rangeHdr, query string
}

// recorder wraps a handler and records its requests.
type recorder struct {
	mu   sync.Mutex
	reqs []request
	h    http.Handler
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, request{path: r.URL.Path, rangeHdr: r.Header.Get("Range"), query: r.URL.RawQuery})
	rc.mu.Unlock()
	rc.h.ServeHTTP(w, r)
}

func (rc *recorder) take() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	r := rc.reqs
	rc.reqs = nil
	return r
}

// serve starts a test server on 127.0.0.1 for the handler.
func serve(t testing.TB, h http.Handler) (*httptest.Server, *recorder) {
	t.Helper()
	rc := &recorder{h: h}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv, rc
}

// filesHandler serves the torrent's files under prefix (a folder URL
// path ending in "/"), answering Range requests as any static server does.
func (tt *testTorrent) filesHandler(prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rel, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		var data []byte
		if tt.multiFile {
			_, inside, _ := strings.Cut(rel, "/")
			data, ok = tt.content[tt.name+"/"+inside]
			ok = ok && strings.HasPrefix(rel, tt.name+"/")
		} else {
			data, ok = tt.content[tt.files[0].Path]
			ok = ok && rel == tt.name
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, rel, time.Time{}, bytes.NewReader(data))
	})
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fetchAll fetches the torrent piece by piece and, separately, as runs of
// pieces and as one region, and compares each to the data.
func fetchAll(t *testing.T, s *Source, tt *testTorrent) {
	t.Helper()
	ctx := testContext(t)
	total := int64(len(tt.data))
	for off := int64(0); off < total; off += tt.pieceLen {
		buf := make([]byte, min(tt.pieceLen, total-off))
		if err := s.Fetch(ctx, off, buf); err != nil {
			t.Fatalf("Fetch piece at %d: %v", off, err)
		}
		if !bytes.Equal(buf, tt.data[off:off+int64(len(buf))]) {
			t.Fatalf("Fetch piece at %d: data differs", off)
		}
	}
	for _, run := range []int64{3, 4} {
		for off := int64(0); off < total; off += run * tt.pieceLen {
			buf := make([]byte, min(run*tt.pieceLen, total-off))
			if err := s.Fetch(ctx, off, buf); err != nil {
				t.Fatalf("Fetch %d pieces at %d: %v", run, off, err)
			}
			if !bytes.Equal(buf, tt.data[off:off+int64(len(buf))]) {
				t.Fatalf("Fetch %d pieces at %d: data differs", run, off)
			}
		}
	}
	buf := make([]byte, total)
	if err := s.Fetch(ctx, 0, buf); err != nil {
		t.Fatalf("Fetch everything: %v", err)
	}
	if !bytes.Equal(buf, tt.data) {
		t.Fatal("Fetch everything: data differs")
	}
}
