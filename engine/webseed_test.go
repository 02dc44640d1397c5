package engine

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serveTorrentFiles writes the torrent's files under a folder and serves
// it over HTTP on 127.0.0.1; corrupt flips a byte in the served copy.
func serveTorrentFiles(t *testing.T, tt *testTorrent, corrupt bool) string {
	return serveTorrentFilesSlow(t, tt, corrupt, 0)
}

// slowWriter sends at most 16 KiB per pause.
type slowWriter struct {
	http.ResponseWriter
	pause time.Duration
}

func (w slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), 16<<10)]
		time.Sleep(w.pause)
		m, err := w.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		b = b[m:]
	}
	return n, nil
}

func serveTorrentFilesSlow(t *testing.T, tt *testTorrent, corrupt bool, pause time.Duration) string {
	root := t.TempDir()
	for i, f := range tt.layout.Files() {
		off := tt.layout.FileOffset(i)
		data := append([]byte(nil), tt.data[off:off+f.Length]...)
		if corrupt && len(data) > 0 {
			data[len(data)/2] ^= 0xff
		}
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs := http.FileServer(http.Dir(root))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pause > 0 {
			w = slowWriter{w, pause}
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// TestWebSeedAlone downloads a multi-file torrent from a web seed with no
// peers at all.
func TestWebSeedAlone(t *testing.T) {
	tt := newTestTorrent(t, []int64{300_000, 0, 2 << 20, 777_777}, 64<<10)
	url := serveTorrentFiles(t, tt, false)
	s := newSwarm(t, tt, 60*time.Second)
	leech := s.node(false, Config{WebSeeds: []string{url}})
	waitDone(t, s.ctx, leech.t)
	s.checkData(leech)
	if st := leech.t.Stats(); st.WebSeedDownloaded != int64(len(tt.data)) {
		t.Fatalf("web seed bytes %d, want %d", st.WebSeedDownloaded, len(tt.data))
	}
}

// TestWebSeedCorrupt: a web seed serving a corrupted file is dropped after
// its bad piece and the download completes from a peer.
func TestWebSeedCorrupt(t *testing.T) {
	tt := newTestTorrent(t, []int64{1 << 20}, 64<<10)
	url := serveTorrentFiles(t, tt, true)
	s := newSwarm(t, tt, 60*time.Second)
	leech := s.node(false, Config{WebSeeds: []string{url}})
	for leech.t.Stats().HashFailures == 0 {
		select {
		case <-s.ctx.Done():
			t.Fatal("corrupt web seed never caught")
		case <-time.After(20 * time.Millisecond):
		}
	}
	seed := s.node(true, Config{})
	leech.t.AddPeers(seed.addr)
	waitDone(t, s.ctx, leech.t)
	s.checkData(leech)
}

// TestWebSeedAndPeer uses both kinds of source at once.
func TestWebSeedAndPeer(t *testing.T) {
	tt := newTestTorrent(t, []int64{4 << 20, 1 << 20}, 64<<10)
	url := serveTorrentFilesSlow(t, tt, false, 20*time.Millisecond)
	s := newSwarm(t, tt, 60*time.Second)
	seed := s.node(true, Config{UploadLimit: NewLimiter(2_000_000)})
	leech := s.node(false, Config{WebSeeds: []string{url}})
	leech.t.AddPeers(seed.addr)
	waitDone(t, s.ctx, leech.t)
	s.checkData(leech)
	st := leech.t.Stats()
	if st.WebSeedDownloaded == 0 || st.Downloaded == st.WebSeedDownloaded {
		t.Fatalf("want data from both the web seed and the peer: %+v", st)
	}
}
