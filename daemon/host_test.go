package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestHostAllowListAgainstDNSRebinding plays a page at evil.example whose
// name was re-pointed at the daemon's loopback address: same-origin as far
// as the browser knows, so Origin matches Host. Every entry point refuses
// it before its handler runs; the names the daemon answers to still work.
func TestHostAllowListAgainstDNSRebinding(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0", RPCHosts: []string{"My.Box"}})
	addr := d.RPCAddr().String()
	_, port, _ := strings.Cut(addr, ":")
	do := func(method, path, host string, hdr map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	// The attacker's page first learns the token (a 409 carries it), then
	// calls with it; neither may get through.
	evil := "evil.example:" + port
	origin := map[string]string{"Origin": "http://" + evil, sessionHeader: d.sessionID}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/transmission/rpc", `{"method":"session-get"}`},
		{"POST", "/transmission/rpc", `{"method":"torrent-add","arguments":{"filename":"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"}}`},
		{"GET", "/api/v1/torrents", ""},
		{"GET", "/", ""},
		{"GET", "/metrics", ""},
	} {
		if code, body := do(c.method, c.path, evil, origin, c.body); code != http.StatusMisdirectedRequest {
			t.Errorf("%s %s with Host %s: HTTP %d %.80q, want 421", c.method, c.path, evil, code, body)
		}
	}
	if list := d.List(); len(list) != 0 {
		t.Fatalf("a refused request added %d torrents", len(list))
	}
	for _, host := range []string{addr, "localhost:" + port, "LOCALHOST.:" + port, "[::1]:" + port, "192.0.2.7:" + port, "my.box:" + port, "My.Box.:" + port} {
		if code, body := do("POST", "/transmission/rpc", host, map[string]string{sessionHeader: d.sessionID}, `{"method":"session-get"}`); code != http.StatusOK {
			t.Errorf("Host %s: HTTP %d %.80q, want 200", host, code, body)
		}
	}
	if code, _ := do("GET", "/metrics", "sub.my.box:"+port, nil, ""); code != http.StatusMisdirectedRequest {
		t.Errorf("Host sub.my.box (not listed): HTTP %d, want 421", code)
	}
}
