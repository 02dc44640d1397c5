package testpeers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func nginxGet(t *testing.T, client *http.Client, url, rangeHeader string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp, body
}

func TestNginxServesRanges(t *testing.T) {
	root := t.TempDir()
	name := filepath.Join(root, "pub", "dir with space", "é.bin")
	RandomFile(t, name, 100_000)
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	n := StartNginx(t, root)
	if !strings.HasPrefix(n.URL, "http://127.0.0.1:") || !strings.HasSuffix(n.URL, "/") {
		t.Fatalf("URL = %q, want http://127.0.0.1:port/", n.URL)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	url := n.URL + "pub/dir%20with%20space/%C3%A9.bin"

	resp, body := nginxGet(t, client, url, "")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("whole file: status %d, %d bytes (equal %v), want 200 and %d bytes",
			resp.StatusCode, len(body), bytes.Equal(body, want), len(want))
	}
	resp, body = nginxGet(t, client, url, "bytes=1000-1999")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[1000:2000]) {
		t.Fatalf("range: status %d, %d bytes, want 206 and bytes 1000-1999", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Content-Range"); got != "bytes 1000-1999/100000" {
		t.Errorf("Content-Range = %q", got)
	}
	resp, _ = nginxGet(t, client, n.URL+"pub/missing.bin", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: status %d, want 404", resp.StatusCode)
	}

	// Every request came over one kept-alive connection and is logged.
	var log []byte
	deadline := time.Now().Add(startWait)
	for {
		log, err = os.ReadFile(n.AccessLog)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Count(log, []byte("\n")) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollInterval)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 3 {
		t.Fatalf("access log has %d lines, want 3:\n%s", len(lines), log)
	}
	conns := make(map[string]bool)
	for _, l := range lines {
		conns[strings.Fields(l)[0]] = true
	}
	if len(conns) != 1 {
		t.Errorf("3 requests used %d connections, want 1 (keep-alive):\n%s", len(conns), log)
	}
	if !strings.Contains(lines[1], `"bytes=1000-1999" 206 1000`) {
		t.Errorf("range request logged as %q", lines[1])
	}
}

func TestNginxDirectives(t *testing.T) {
	root := t.TempDir()
	RandomFile(t, filepath.Join(root, "f.bin"), 5000)
	want, err := os.ReadFile(filepath.Join(root, "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	n := StartNginx(t, root, "max_ranges 0;", "location = /loop { return 302 /loop; }")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()

	resp, body := nginxGet(t, client, n.URL+"f.bin", "bytes=10-19")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("max_ranges 0: status %d and %d bytes, want 200 and the whole file", resp.StatusCode, len(body))
	}
	resp, _ = nginxGet(t, client, n.URL+"loop", "")
	if resp.StatusCode != http.StatusFound || !strings.HasSuffix(resp.Header.Get("Location"), "/loop") {
		t.Errorf("loop: status %d Location %q, want 302 to /loop", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestNginxStop(t *testing.T) {
	n := StartNginx(t, t.TempDir())
	n.Stop()
	if gone, _ := n.proc.exited(); !gone {
		t.Fatal("nginx still running after Stop")
	}
	client := &http.Client{Timeout: rpcTimeout}
	if err := n.probe(client); err == nil {
		t.Error("nginx still answers after Stop")
	}
}

func TestNginxConfig(t *testing.T) {
	cfg := nginxConfig("/tmp/p", "/srv/a", 8080, []string{"max_ranges 0;"})
	for _, want := range []string{`root "/srv/a";`, "listen 127.0.0.1:8080;", "max_ranges 0;", "daemon off;", "master_process off;"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}
