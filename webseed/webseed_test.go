package webseed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sowerbt/sower/storage"
)

func TestFileURL(t *testing.T) {
	tests := []struct {
		raw, name string
		multi     bool
		path      []string
		want      string
	}{
		{"http://h/f.iso", "x.iso", false, nil, "http://h/f.iso"},
		{"http://h/pub/", "x.iso", false, nil, "http://h/pub/x.iso"},
		{"http://h/pub/", "a b+c é.iso", false, nil, "http://h/pub/a%20b%2Bc%20%C3%A9.iso"},
		{"https://h:8443/pub/?token=1", "x.iso", false, nil, "https://h:8443/pub/x.iso?token=1"},
		{"http://h/pub/", "名前", false, nil, "http://h/pub/%E5%90%8D%E5%89%8D"},
		{"http://h/file%20name.iso", "x", false, nil, "http://h/file%20name.iso"},
		{"http://h/pub", "t", true, []string{"a.bin"}, "http://h/pub/t/a.bin"},
		{"http://h/pub/", "t", true, []string{"d 1", "e/f?#%.bin"}, "http://h/pub/t/d%201/e%2Ff%3F%23%25.bin"},
		{"http://h", "my t", true, []string{"x;y=z&w"}, "http://h/my%20t/x%3By%3Dz%26w"},
		{"http://h/a%2Fb/", "t", true, []string{"c"}, "http://h/a%2Fb/t/c"},
		{"http://h/pub/#frag", "t", false, nil, "http://h/pub/t"},
	}
	for _, tc := range tests {
		got, err := FileURL(tc.raw, tc.name, tc.multi, tc.path)
		if err != nil || got != tc.want {
			t.Errorf("FileURL(%q, %q, %v, %q) = %q, %v; want %q", tc.raw, tc.name, tc.multi, tc.path, got, err, tc.want)
			continue
		}
		// The server must see the name and path as they are in the torrent.
		u, err := url.Parse(got)
		if err != nil {
			t.Errorf("FileURL gave %q, which does not parse: %v", got, err)
			continue
		}
		want := tc.name
		if tc.multi {
			want = tc.name + "/" + strings.Join(tc.path, "/")
		}
		if (tc.multi || strings.HasSuffix(tc.raw, "/")) && !strings.HasSuffix(u.Path, "/"+want) {
			t.Errorf("FileURL(%q, %q): server would see path %q, want it to end in %q", tc.raw, tc.name, u.Path, "/"+want)
		}
	}
	for _, raw := range []string{"ftp://h/f", "h/f", "http:///f", "http://h/%zz", "://"} {
		if got, err := FileURL(raw, "n", false, nil); err == nil {
			t.Errorf("FileURL(%q) = %q, want an error", raw, got)
		}
	}
	if _, err := FileURL("http://h/", "n", true, nil); err == nil {
		t.Error("FileURL of a multi-file torrent's file with no path: no error")
	}
}

func TestNewRejects(t *testing.T) {
	files := []storage.File{{Path: "t/a", Length: 10}}
	var ih [20]byte
	tests := []struct {
		what  string
		kind  Kind
		url   string
		files []storage.File
		multi bool
		total int64
	}{
		{"kind", 0, "http://h/", files, true, 10},
		{"scheme", URLList, "ftp://h/", files, true, 10},
		{"total", URLList, "http://h/", files, true, 11},
		{"no folder", URLList, "http://h/", []storage.File{{Path: "a", Length: 10}}, true, 10},
		{"two files, single", URLList, "http://h/", append(files, storage.File{Path: "t/b", Length: 1}), false, 11},
		{"bad path", URLList, "http://h/", []storage.File{{Path: "t/../a", Length: 10}}, true, 10},
	}
	for _, tc := range tests {
		if _, err := New(tc.kind, tc.url, "t", tc.files, tc.multi, 4, tc.total, ih, Config{}); err == nil {
			t.Errorf("%s: New succeeded", tc.what)
		}
	}
	if _, err := New(URLList, "http://h/", "", files, true, 4, 10, ih, Config{}); err == nil {
		t.Error("empty name: New succeeded")
	}
}

func TestFetchSingleFile(t *testing.T) {
	tt := newTorrent(t, "single file.bin", false, 1000, spec{path: "single file.bin", length: 10_500})
	srv, rec := serve(t, tt.filesHandler("/pub/"))
	for _, raw := range []string{srv.URL + "/pub/", srv.URL + "/pub/single%20file.bin"} {
		s := tt.source(t, URLList, raw, Config{})
		if s.URL() != raw || s.Kind() != URLList {
			t.Errorf("URL, Kind = %q, %v", s.URL(), s.Kind())
		}
		fetchAll(t, s, tt)
	}
	for _, r := range rec.take() {
		if r.path != "/pub/single file.bin" || !strings.HasPrefix(r.rangeHdr, "bytes=") {
			t.Fatalf("request %+v, want a Range request for /pub/single file.bin", r)
		}
	}
}

func TestFetchMultiFile(t *testing.T) {
	tt := multiTorrent(t)
	srv, rec := serve(t, tt.filesHandler("/pub/"))
	s := tt.source(t, URLList, srv.URL+"/pub", Config{MaxConns: 3})
	fetchAll(t, s, tt)
	rec.take()

	// Piece 0 is a.bin and the start of "b+c é#?.bin": one request each,
	// the empty file skipped.
	buf := make([]byte, 1024)
	if err := s.Fetch(testContext(t), 0, buf); err != nil {
		t.Fatal(err)
	}
	got := rec.take()
	want := map[request]bool{
		{path: "/pub/my torrent/a.bin", rangeHdr: "bytes=0-999"}:              true,
		{path: "/pub/my torrent/sub dir/b+c é#?.bin", rangeHdr: "bytes=0-23"}: true,
	}
	if len(got) != len(want) {
		t.Fatalf("piece 0: requests %+v, want %v", got, want)
	}
	for _, r := range got {
		if !want[r] {
			t.Errorf("piece 0: unexpected request %+v", r)
		}
	}

	// Layout: a.bin 0-999, empty, b+c 1000-3999, pad 4000-4499, d.bin
	// 4500-11499, e.bin 11500-11509. Piece 3 (3072-4095) is bytes
	// 2072-2999 of b+c and 96 bytes of padding, which is not asked for and
	// reads as zeros.
	for i := range buf {
		buf[i] = 0xff
	}
	if err := s.Fetch(testContext(t), 3072, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, tt.data[3072:4096]) {
		t.Error("piece 3: data differs (padding not zeroed?)")
	}
	got = rec.take()
	if len(got) != 1 || got[0].rangeHdr != "bytes=2072-2999" {
		t.Errorf("piece 3: requests %+v, want one for bytes=2072-2999 of b+c", got)
	}

	// The pad file alone: no request at all.
	if err := s.Fetch(testContext(t), 4000, buf[:500]); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("padding only: requests %+v, want none", got)
	}
}

func TestFetchBounds(t *testing.T) {
	tt := newTorrent(t, "f", false, 100, spec{path: "f", length: 250})
	s := tt.source(t, URLList, "http://127.0.0.1:1/f", Config{})
	ctx := testContext(t)
	for _, r := range []struct{ off, n int64 }{{-1, 10}, {0, 251}, {241, 10}, {251, 0}} {
		if err := s.Fetch(ctx, r.off, make([]byte, r.n)); err == nil {
			t.Errorf("Fetch(%d, %d bytes) succeeded", r.off, r.n)
		}
	}
	if err := s.Fetch(ctx, 250, nil); err != nil {
		t.Errorf("empty Fetch at the end: %v", err)
	}
}

func TestIgnoresRange(t *testing.T) {
	small := newTorrent(t, "s", true, 1024,
		spec{path: "s/small", length: 3000}, spec{path: "s/large", length: smallFile + 5000})
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Range")
		small.filesHandler("/").ServeHTTP(w, r)
	}))
	s := small.source(t, URLList, srv.URL, Config{})
	ctx := testContext(t)

	// Start of a small file: taken whole, the rest drained.
	buf := make([]byte, 1024)
	if err := s.Fetch(ctx, 0, buf); err != nil {
		t.Fatalf("small file from 0: %v", err)
	}
	if !bytes.Equal(buf, small.data[:1024]) {
		t.Fatal("small file from 0: data differs")
	}
	// Middle of a small file, or of a large one: ErrNoRange.
	for _, off := range []int64{1024, 3072, 3000 + 4096} {
		err := s.Fetch(ctx, off, buf)
		if !errors.Is(err, ErrNoRange) {
			t.Errorf("Fetch at %d: %v, want ErrNoRange", off, err)
		}
	}
	// A large file asked whole is fine too.
	big := make([]byte, smallFile+5000)
	if err := s.Fetch(ctx, 3000, big); err != nil {
		t.Fatalf("whole large file: %v", err)
	}
	if !bytes.Equal(big, small.data[3000:]) {
		t.Fatal("whole large file: data differs")
	}
}

func TestNotFound(t *testing.T) {
	tt := multiTorrent(t)
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/d.bin") {
			http.NotFound(w, r)
			return
		}
		tt.filesHandler("/").ServeHTTP(w, r)
	}))
	s := tt.source(t, URLList, srv.URL+"/", Config{})
	ctx := testContext(t)
	buf := make([]byte, 2048)
	err := s.Fetch(ctx, 4096, buf) // pad, d.bin
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotFound || !strings.HasSuffix(he.URL, "/my%20torrent/d.bin") {
		t.Fatalf("Fetch of d.bin: %v, want *HTTPError 404 naming d.bin", err)
	}
	if !strings.Contains(err.Error(), "404") {
		t.Errorf("error %q does not say 404", err)
	}
	// The other files still come.
	if err := s.Fetch(ctx, 0, buf); err != nil || !bytes.Equal(buf, tt.data[:2048]) {
		t.Fatalf("Fetch of a.bin and b+c: %v", err)
	}
}

func TestRedirects(t *testing.T) {
	tt := newTorrent(t, "f.bin", false, 512, spec{path: "f.bin", length: 2000})
	files := tt.filesHandler("/real/")
	srv, rec := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/moved/f.bin":
			http.Redirect(w, r, "/real/f.bin", http.StatusFound)
		case p == "/loop/f.bin":
			http.Redirect(w, r, "/loop/f.bin", http.StatusFound)
		case p == "/loop2/a":
			http.Redirect(w, r, "/loop2/b", http.StatusMovedPermanently)
		case p == "/loop2/b":
			http.Redirect(w, r, "/loop2/a", http.StatusMovedPermanently)
		case strings.HasPrefix(p, "/chain/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/chain/"))
			http.Redirect(w, r, "/chain/"+strconv.Itoa(n+1), http.StatusTemporaryRedirect)
		default:
			files.ServeHTTP(w, r)
		}
	}))
	ctx := testContext(t)
	buf := make([]byte, 512)

	s := tt.source(t, URLList, srv.URL+"/moved/f.bin", Config{})
	if err := s.Fetch(ctx, 512, buf); err != nil || !bytes.Equal(buf, tt.data[512:1024]) {
		t.Fatalf("through one redirect: %v", err)
	}
	reqs := rec.take()
	if len(reqs) != 2 || reqs[1].rangeHdr != "bytes=512-1023" {
		t.Errorf("requests %+v, want the Range kept across the redirect", reqs)
	}

	for _, u := range []string{"/loop/f.bin", "/loop2/a"} {
		s := tt.source(t, URLList, srv.URL+u, Config{MaxRedirects: 50})
		if err := s.Fetch(ctx, 0, buf); !errors.Is(err, ErrRedirectLoop) {
			t.Errorf("%s: %v, want ErrRedirectLoop", u, err)
		}
		if n := len(rec.take()); n > 3 {
			t.Errorf("%s: %d requests before the loop was seen", u, n)
		}
	}

	s = tt.source(t, URLList, srv.URL+"/chain/0", Config{MaxRedirects: 3})
	if err := s.Fetch(ctx, 0, buf); !errors.Is(err, ErrTooManyRedirects) {
		t.Errorf("chain: %v, want ErrTooManyRedirects", err)
	}
	if n := len(rec.take()); n != 4 {
		t.Errorf("chain with MaxRedirects 3: %d requests, want 4", n)
	}
	s = tt.source(t, URLList, srv.URL+"/moved/f.bin", Config{MaxRedirects: -1})
	if err := s.Fetch(ctx, 0, buf); !errors.Is(err, ErrTooManyRedirects) {
		t.Errorf("MaxRedirects -1: %v, want ErrTooManyRedirects", err)
	}
}

// hang blocks a handler until the client gives up or the test ends.
func hang(t *testing.T) func(r *http.Request) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
}

func TestStall(t *testing.T) {
	tt := newTorrent(t, "f", false, 1024, spec{path: "f", length: 4096})
	wait := hang(t)
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/headers":
			wait(r)
		case "/body":
			w.Header().Set("Content-Range", "bytes 0-1023/4096")
			w.Header().Set("Content-Length", "1024")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(tt.data[:100])
			w.(http.Flusher).Flush()
			wait(r)
		}
	}))
	for _, p := range []string{"/headers", "/body"} {
		s := tt.source(t, URLList, srv.URL+p, Config{Timeout: 100 * time.Millisecond})
		err := s.Fetch(testContext(t), 0, make([]byte, 1024))
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: %v, want ErrTimeout", p, err)
		}
	}
}

func TestCorruptDataIsReturned(t *testing.T) {
	// Verification is the engine's job: Fetch hands over what the server
	// sent, and the engine's hash check then calls Backoff.Poisoned.
	tt := newTorrent(t, "f", false, 1024, spec{path: "f", length: 4096})
	bad := bytes.Clone(tt.data)
	bad[1500] ^= 0x55
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(bad))
	}))
	s := tt.source(t, URLList, srv.URL+"/f", Config{})
	buf := make([]byte, 1024)
	if err := s.Fetch(testContext(t), 1024, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, bad[1024:2048]) || bytes.Equal(buf, tt.data[1024:2048]) {
		t.Fatal("Fetch did not return the server's (corrupt) bytes")
	}
}

func TestBadAnswers(t *testing.T) {
	tt := newTorrent(t, "f", false, 1000, spec{path: "f", length: 5000})
	answer := func(status int, headers map[string]string, body []byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range headers {
				w.Header()[k] = []string{v}
			}
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	}
	piece1 := tt.data[1000:2000]
	tests := []struct {
		name string
		h    http.Handler
		want error
	}{
		{"no Content-Range", answer(206, nil, piece1), ErrBadContentRange},
		{"other range", answer(206, map[string]string{"Content-Range": "bytes 0-999/5000"}, tt.data[:1000]), ErrBadContentRange},
		{"other size", answer(206, map[string]string{"Content-Range": "bytes 1000-1999/6000"}, piece1), ErrBadContentRange},
		{"garbage range", answer(206, map[string]string{"Content-Range": "bytes 1000-1999"}, piece1), ErrBadContentRange},
		{"short Content-Length", answer(206, map[string]string{"Content-Range": "bytes 1000-1999/5000", "Content-Length": "999"}, piece1[:999]), ErrShortBody},
		{"long Content-Length", answer(206, map[string]string{"Content-Range": "bytes 1000-1999/5000", "Content-Length": "1001"}, append(bytes.Clone(piece1), 0)), ErrLongBody},
		{"short chunked body", answer(206, map[string]string{"Content-Range": "bytes 1000-1999/*"}, piece1[:500]), ErrShortBody},
		{"long chunked body", answer(206, map[string]string{"Content-Range": "bytes 1000-1999/*"}, append(bytes.Clone(piece1), 1, 2, 3)), ErrLongBody},
		{"cut body", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 1000-1999/5000")
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(206)
			_, _ = w.Write(piece1[:300])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}), ErrShortBody},
	}
	for _, tc := range tests {
		srv, _ := serve(t, tc.h)
		s := tt.source(t, URLList, srv.URL+"/f", Config{})
		if err := s.Fetch(testContext(t), 1000, make([]byte, 1000)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// 206 with "*" as the size is fine.
	srv, _ := serve(t, answer(206, map[string]string{"Content-Range": "bytes 1000-1999/*"}, piece1))
	s := tt.source(t, URLList, srv.URL+"/f", Config{})
	buf := make([]byte, 1000)
	if err := s.Fetch(testContext(t), 1000, buf); err != nil || !bytes.Equal(buf, piece1) {
		t.Errorf("size *: %v", err)
	}
}

func TestBusy(t *testing.T) {
	tt := newTorrent(t, "f", false, 1000, spec{path: "f", length: 5000})
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/seconds":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/toomany":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/plain":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	for _, tc := range []struct {
		path   string
		status int
		after  time.Duration
	}{{"/seconds", 503, 120 * time.Second}, {"/toomany", 429, 7 * time.Second}} {
		s := tt.source(t, URLList, srv.URL+tc.path, Config{})
		err := s.Fetch(testContext(t), 0, make([]byte, 10))
		var ra *RetryAfterError
		if !errors.As(err, &ra) || ra.Status != tc.status || ra.After != tc.after {
			t.Errorf("%s: %v, want *RetryAfterError %d after %v", tc.path, err, tc.status, tc.after)
		}
	}
	s := tt.source(t, URLList, srv.URL+"/plain", Config{})
	var he *HTTPError
	if err := s.Fetch(testContext(t), 0, make([]byte, 10)); !errors.As(err, &he) || he.Status != 503 {
		t.Errorf("503 without Retry-After: %v, want *HTTPError 503", err)
	}
}

// bep17Handler is a BEP 17 seed script for tt: it checks the info-hash and
// answers 503 with retryAfter as the body while busy is set.
func bep17Handler(tt *testTorrent, busy *atomic.Bool, retryAfter string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if busy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, retryAfter)
			return
		}
		q := r.URL.Query()
		if q.Get("info_hash") != string(tt.infoHash[:]) {
			http.Error(w, "unknown info_hash", http.StatusNotFound)
			return
		}
		piece, err := strconv.ParseInt(q.Get("piece"), 10, 64)
		total := int64(len(tt.data))
		if err != nil || piece < 0 || piece*tt.pieceLen >= total {
			http.Error(w, "bad piece", http.StatusBadRequest)
			return
		}
		data := tt.data[piece*tt.pieceLen : min((piece+1)*tt.pieceLen, total)]
		var out []byte
		if rs := q.Get("ranges"); rs != "" {
			for _, r := range strings.Split(rs, ",") {
				a, b, _ := strings.Cut(r, "-")
				first, err1 := strconv.Atoi(a)
				last, err2 := strconv.Atoi(b)
				if err1 != nil || err2 != nil || first > last || last >= len(data) {
					http.Error(w, "bad range", http.StatusBadRequest)
					return
				}
				out = append(out, data[first:last+1]...)
			}
		} else {
			out = data
		}
		_, _ = w.Write(out)
	})
}

func TestHTTPSeed(t *testing.T) {
	tt := multiTorrent(t)
	var busy atomic.Bool
	srv, rec := serve(t, bep17Handler(tt, &busy, "30\n"))
	s := tt.source(t, HTTPSeed, srv.URL+"/seed.php?key=v", Config{})
	fetchAll(t, s, tt)
	rec.take()

	// A whole piece: no ranges. Part of a piece, and a region across two
	// pieces: one query per piece, with its range.
	ctx := testContext(t)
	if err := s.Fetch(ctx, 1024, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if err := s.Fetch(ctx, 2000, buf); err != nil || !bytes.Equal(buf, tt.data[2000:3000]) {
		t.Fatalf("Fetch across pieces: %v", err)
	}
	ihq := "info_hash=" + escapeBytes(string(tt.infoHash[:]))
	want := []string{
		"key=v&" + ihq + "&piece=1",
		"key=v&" + ihq + "&piece=1&ranges=976-1023",
		"key=v&" + ihq + "&piece=2&ranges=0-951",
	}
	got := rec.take()
	var queries []string
	for _, r := range got {
		queries = append(queries, r.query)
		if r.path != "/seed.php" {
			t.Errorf("path %q", r.path)
		}
	}
	// The two queries of one Fetch run in parallel, in either order.
	if len(queries) == 3 && queries[1] > queries[2] {
		queries[1], queries[2] = queries[2], queries[1]
	}
	if strings.Join(queries, "\n") != strings.Join(want, "\n") {
		t.Errorf("queries:\n%s\nwant:\n%s", strings.Join(queries, "\n"), strings.Join(want, "\n"))
	}

	busy.Store(true)
	err := s.Fetch(ctx, 0, make([]byte, 100))
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra.After != 30*time.Second || ra.Status != 503 {
		t.Fatalf("busy: %v, want *RetryAfterError after 30s", err)
	}
	b := NewBackoff(BackoffConfig{})
	now := time.Unix(1000, 0)
	if d := b.Failure(now, err); d != 30*time.Second || b.Ready(now.Add(29*time.Second)) || !b.Ready(now.Add(30*time.Second)) {
		t.Errorf("Backoff after retry-after 30: wait %v, until %v", d, b.Until())
	}
}

func TestHTTPSeedBusyWithoutNumber(t *testing.T) {
	tt := newTorrent(t, "f", false, 100, spec{path: "f", length: 300})
	var busy atomic.Bool
	busy.Store(true)
	srv, _ := serve(t, bep17Handler(tt, &busy, "try later"))
	s := tt.source(t, HTTPSeed, srv.URL, Config{})
	var he *HTTPError
	if err := s.Fetch(testContext(t), 0, make([]byte, 100)); !errors.As(err, &he) || he.Status != 503 {
		t.Errorf("503 with a non-numeric body: %v, want *HTTPError 503", err)
	}
}

func TestMaxConns(t *testing.T) {
	// Many small files, fetched by several Fetch calls at once: never more
	// than MaxConns requests in flight, in total.
	var specs []spec
	for i := range 40 {
		specs = append(specs, spec{path: fmt.Sprintf("t/%02d", i), length: 300})
	}
	tt := newTorrent(t, "t", true, 1000, specs...)
	var inFlight, peak atomic.Int32
	files := tt.filesHandler("/")
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond) // let requests overlap
		files.ServeHTTP(w, r)
		inFlight.Add(-1)
	}))
	const maxConns = 3
	s := tt.source(t, URLList, srv.URL, Config{MaxConns: maxConns})
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			off := int64(i) * 1000
			buf := make([]byte, min(1000, int64(len(tt.data))-off))
			if err := s.Fetch(testContext(t), off, buf); err != nil {
				errs <- err
			} else if !bytes.Equal(buf, tt.data[off:off+int64(len(buf))]) {
				errs <- fmt.Errorf("piece %d differs", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p > maxConns {
		t.Errorf("%d requests in flight at once, MaxConns is %d", p, maxConns)
	}
}

func TestFetchCancelled(t *testing.T) {
	tt := multiTorrent(t)
	wait := hang(t)
	started := make(chan struct{}, 10)
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		wait(r)
	}))
	s := tt.source(t, URLList, srv.URL, Config{})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	go func() {
		<-started
		cancel()
	}()
	err := s.Fetch(ctx, 0, make([]byte, 4096))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Fetch: %v, want context.Canceled", err)
	}
}
