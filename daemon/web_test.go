package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestWebUIAndMetrics(t *testing.T) {
	f := newFixture(t, 64<<10, 16<<10)
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0"})
	add(t, d.Daemon, f, f.dir)
	base := "http://" + d.RPCAddr().String()

	resp, body := get(t, base+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<canvas id="pieces"`) || !strings.Contains(body, `name="viewport"`) {
		t.Fatalf("index: HTTP %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("index lacks anti-framing headers: %v", resp.Header)
	}
	resp, body = get(t, base+"/app.js")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(body, "X-Transmission-Session-Id") {
		t.Fatalf("app.js: HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r2, err := http.Post(base+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: HTTP %d", r2.StatusCode)
	}

	// The torrent page's data: detail with the piece map.
	resp, body = get(t, base+"/api/v1/torrents/"+f.hashString())
	if resp.StatusCode != 200 || !strings.Contains(body, `"piece_count":4`) || !strings.Contains(body, `"files":[{"path":"`+f.name) {
		t.Fatalf("detail: HTTP %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, base+"/api/v1/torrents/nothex"); resp.StatusCode != 400 || !strings.Contains(body, "40 hex") {
		t.Fatalf("detail of a bad hash: HTTP %d %s", resp.StatusCode, body)
	}

	resp, body = get(t, base+"/metrics")
	if resp.StatusCode != 200 || !strings.Contains(body, "sower_torrents{state=") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: HTTP %d\n%s", resp.StatusCode, body)
	}
}

func TestWebUINeedsAuthWithPassword(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0", Password: "pw"})
	for _, p := range []string{"/", "/app.js", "/api/v1/torrents", "/metrics"} {
		resp, _ := get(t, "http://"+d.RPCAddr().String()+p)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without credentials: HTTP %d", p, resp.StatusCode)
		}
	}
}
