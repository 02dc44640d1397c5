package tracker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAnnounceQueryEncoding(t *testing.T) {
	var ih [20]byte
	copy(ih[:], "\x00 %+&=~-._aZ9\xff\x80/?#\x7f")
	var pid [20]byte
	copy(pid[:], "-SW0100-abcdefghijkl")
	var gotRaw, gotPath string
	var gotQuery map[string][]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotRaw, gotPath, gotQuery = r.URL.RawQuery, r.URL.Path, r.URL.Query()
		if ua := r.Header.Get("User-Agent"); ua != "Sower/0.1" {
			http.Error(w, "bad user agent "+ua, http.StatusBadRequest)
			return
		}
		io.WriteString(w, "d8:intervali900e5:peers0:e")
	}))
	defer srv.Close()

	c := &Client{UserAgent: "Sower/0.1"}
	req := AnnounceRequest{
		InfoHash: ih, PeerID: pid, Port: 51413,
		Uploaded: 1, Downloaded: 2, Left: 3, Event: Completed,
		NumWant: 0, Key: 0xab, TrackerID: "id 1&x",
	}
	resp, err := c.Announce(ctxT(t), srv.URL+"/k3y/announce?passkey=s%2Fecret", req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Interval != 900*time.Second || len(resp.Peers) != 0 {
		t.Errorf("response %+v", resp)
	}
	want := "passkey=s%2Fecret" +
		"&info_hash=%00%20%25%2B%26%3D~-._aZ9%FF%80%2F%3F%23%7F%00" +
		"&peer_id=-SW0100-abcdefghijkl" +
		"&port=51413&uploaded=1&downloaded=2&left=3&compact=1&event=completed&numwant=0&key=000000ab" +
		"&trackerid=id+1%26x"
	if gotRaw != want {
		t.Errorf("query\n got %s\nwant %s", gotRaw, want)
	}
	if gotPath != "/k3y/announce" {
		t.Errorf("path %q", gotPath)
	}
	if got := gotQuery["info_hash"]; len(got) != 1 || got[0] != string(ih[:]) {
		t.Errorf("server decoded info_hash %q, want %q", got, ih[:])
	}

	// A regular announce omits event, and a negative NumWant omits numwant.
	req.Event, req.NumWant, req.TrackerID = None, -1, ""
	if _, err := c.Announce(ctxT(t), srv.URL+"/announce", req); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(gotRaw, "event=") || strings.Contains(gotRaw, "numwant=") ||
		strings.Contains(gotRaw, "trackerid=") || !strings.HasPrefix(gotRaw, "info_hash=") {
		t.Errorf("regular announce query %s", gotRaw)
	}
}

func TestAppendQuery(t *testing.T) {
	tests := []struct{ base, want string }{
		{"http://t/announce", "http://t/announce?q=1"},
		{"http://t/announce?pk=a", "http://t/announce?pk=a&q=1"},
		{"http://t/announce?", "http://t/announce?q=1"},
		{"http://t/announce?pk=a&", "http://t/announce?pk=a&q=1"},
		{"http://t/announce#frag", "http://t/announce?q=1"},
	}
	for _, tt := range tests {
		if got := appendQuery(tt.base, "q=1"); got != tt.want {
			t.Errorf("appendQuery(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

func TestParseAnnounceResponse(t *testing.T) {
	compact := "\x0a\x00\x00\x01\x1a\xe1" + "\x7f\x00\x00\x01\x00\x50" /* duplicate */ + "\x00\x00\x00\x00\x00\x01" /* skipped */ + "\x7f\x00\x00\x01\x00\x50"
	v6 := "\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x01\xc8\xd5" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x01\x02\x03\x04\x00\x10" + // v4-mapped
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x0a\x00\x00\x01\x1a\xe1" // same as a "peers" entry
	body := mustMarshal(t, map[string]any{
		"interval":        int64(1800),
		"min interval":    int64(60),
		"complete":        int64(4),
		"incomplete":      int64(9),
		"tracker id":      "tid-1",
		"warning message": "slow down",
		"peers":           compact,
		"peers6":          v6,
	})
	r, err := ParseAnnounceResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:6881"),
		netip.MustParseAddrPort("127.0.0.1:80"),
		netip.MustParseAddrPort("[2001:db8::1]:51413"),
		netip.MustParseAddrPort("1.2.3.4:16"),
	}
	if len(r.Peers) != len(want) {
		t.Fatalf("peers = %v, want %v", r.Peers, want)
	}
	for i, p := range r.Peers {
		if p.Addr != want[i] || p.ID != ([20]byte{}) {
			t.Errorf("peer %d = %v, want %v", i, p, want[i])
		}
	}
	if r.Interval != 30*time.Minute || r.MinInterval != time.Minute || r.Complete != 4 || r.Incomplete != 9 ||
		r.TrackerID != "tid-1" || r.Warning != "slow down" {
		t.Errorf("fields: %+v", r)
	}
}

func TestParseDictionaryPeers(t *testing.T) {
	id := "-XX0000-123456789012"
	body := mustMarshal(t, map[string]any{
		"interval": int64(60),
		"peers": []any{
			map[string]any{"ip": "192.0.2.7", "port": int64(6881), "peer id": id},
			map[string]any{"ip": "tracker.example.org", "port": int64(1)}, // hostname: skipped
			map[string]any{"ip": "2001:db8::2", "port": int64(443)},
			map[string]any{"ip": "fe80::1%eth0", "port": int64(7)},
			map[string]any{"ip": "::ffff:10.1.2.3", "port": int64(8)},
			map[string]any{"ip": "192.0.2.8", "port": int64(0)}, // undialable: skipped
		},
	})
	r, err := ParseAnnounceResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{Addr: netip.MustParseAddrPort("192.0.2.7:6881"), ID: [20]byte([]byte(id))},
		{Addr: netip.MustParseAddrPort("[2001:db8::2]:443")},
		{Addr: netip.MustParseAddrPort("[fe80::1]:7")},
		{Addr: netip.MustParseAddrPort("10.1.2.3:8")},
	}
	if len(r.Peers) != len(want) {
		t.Fatalf("peers = %v, want %v", r.Peers, want)
	}
	for i := range want {
		if r.Peers[i] != want[i] {
			t.Errorf("peer %d = %v, want %v", i, r.Peers[i], want[i])
		}
	}
}

func TestParseAnnounceResponseErrors(t *testing.T) {
	tests := []struct {
		name, body, err string
	}{
		{"empty", "", "empty response body"},
		{"html", "<html>oops</html>", "decoding bencoded response"},
		{"not dict", "li1ee", "response is a list, want dictionary"},
		{"trailing garbage", "d8:intervali1e5:peers0:exyz", "decoding"},
		{"no interval", "d5:peers0:e", `lacks required key "interval"`},
		{"interval type", "d8:interval2:60e", `key "interval" is a string, want integer`},
		{"negative interval", "d8:intervali-5ee", `key "interval" value -5 out of range`},
		{"huge interval", "d8:intervali99999999999ee", "out of range"},
		{"negative complete", "d8:completei-1e8:intervali5ee", `key "complete" value -1`},
		{"compact length", "d8:intervali5e5:peers5:abcdee", `"peers": length 5 is not a multiple of 6`},
		{"peers6 length", "d8:intervali5e6:peers66:abcdefe", `"peers6": length 6 is not a multiple of 18`},
		{"peers type", "d8:intervali5e5:peersi3ee", `key "peers" is an integer, want string or list`},
		{"peers6 type", "d8:intervali5e6:peers6lee", `key "peers6" is a list`},
		{"peer not dict", "d8:intervali5e5:peersli1eee", "peers[0] is an integer, want dictionary"},
		{"peer no ip", "d8:intervali5e5:peersld4:porti1eeee", `peers[0] lacks key "ip"`},
		{"peer no port", "d8:intervali5e5:peersld2:ip7:1.2.3.4eee", `peers[0] lacks key "port"`},
		{"peer port range", "d8:intervali5e5:peersld2:ip7:1.2.3.44:porti65536eeee", `peers[0]: key "port" value 65536 out of range`},
		{"peer id length", "d8:intervali5e5:peersld2:ip7:1.2.3.47:peer id3:abc4:porti1eeee", `peers[0]: "peer id" is 3 bytes`},
		{"failure type", "d14:failure reasoni1ee", `key "failure reason" is an integer`},
	}
	for _, tt := range tests {
		_, err := ParseAnnounceResponse([]byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: err = %v, want containing %q", tt.name, err, tt.err)
		}
		var fe *FailureError
		if errors.As(err, &fe) {
			t.Errorf("%s: malformed body reported as tracker failure", tt.name)
		}
	}
}

func TestParseAnnounceResponseTolerance(t *testing.T) {
	// Unsorted keys, trailing newline, no "peers" key.
	r, err := ParseAnnounceResponse([]byte("d8:intervali120e8:completei1ee\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != 2*time.Minute || r.Complete != 1 || len(r.Peers) != 0 {
		t.Errorf("got %+v", r)
	}
	// Unknown keys are ignored.
	if _, err := ParseAnnounceResponse([]byte("d8:intervali1e3:zzzli1eee")); err != nil {
		t.Errorf("unknown key: %v", err)
	}
}

func TestFailureReason(t *testing.T) {
	_, err := ParseAnnounceResponse([]byte("d14:failure reason17:torrent not founde"))
	var fe *FailureError
	if !errors.As(err, &fe) || fe.Reason != "torrent not found" {
		t.Fatalf("err = %v, want FailureError", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "d14:failure reason6:bannede")
	}))
	defer srv.Close()
	_, err = (&Client{}).Announce(ctxT(t), srv.URL+"/announce", AnnounceRequest{})
	if !errors.As(err, &fe) || fe.Reason != "banned" {
		t.Fatalf("err = %v, want FailureError banned", err)
	}
}

func TestHTTPErrors(t *testing.T) {
	huge := strings.Repeat("x", 500)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500/announce":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "internal error: database on fire"+huge)
		case "/400/announce":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "d14:failure reason12:unknown infoe")
		case "/garbage/announce":
			io.WriteString(w, "<html><body>Welcome to nginx!</body></html>")
		case "/big/announce":
			io.WriteString(w, "d8:intervali1e5:peers2000:"+strings.Repeat("y", 2000)+"e")
		}
	}))
	defer srv.Close()
	c := &Client{MaxResponseBytes: 1024}

	_, err := c.Announce(ctxT(t), srv.URL+"/500/announce", AnnounceRequest{})
	if err == nil || !strings.Contains(err.Error(), "HTTP status 500") ||
		!strings.Contains(err.Error(), "database on fire") || len(err.Error()) > 600 {
		t.Errorf("500: err = %v", err)
	}
	var fe *FailureError
	_, err = c.Announce(ctxT(t), srv.URL+"/400/announce", AnnounceRequest{})
	if !errors.As(err, &fe) || fe.Reason != "unknown info" || !strings.Contains(err.Error(), "HTTP status 400") {
		t.Errorf("400 with failure reason: err = %v", err)
	}
	_, err = c.Announce(ctxT(t), srv.URL+"/garbage/announce", AnnounceRequest{})
	if err == nil || !strings.Contains(err.Error(), "decoding bencoded response") || errors.As(err, &fe) {
		t.Errorf("garbage: err = %v", err)
	}
	_, err = c.Announce(ctxT(t), srv.URL+"/big/announce", AnnounceRequest{})
	if err == nil || !strings.Contains(err.Error(), "exceeds 1024 bytes") {
		t.Errorf("oversized: err = %v", err)
	}
	_, err = c.Announce(ctxT(t), "gopher://x/announce", AnnounceRequest{})
	if !errors.Is(err, ErrUnsupportedScheme) {
		t.Errorf("scheme: err = %v", err)
	}
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	defer close(release)
	c := &Client{HTTPTimeout: 100 * time.Millisecond}
	_, err := c.Announce(ctxT(t), srv.URL+"/announce?passkey=SECRET", AnnounceRequest{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error leaks the passkey: %v", err)
	}
}

func TestScrapeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://t.example/announce", "http://t.example/scrape"},
		{"https://t.example:8443/x/announce?passkey=abc", "https://t.example:8443/x/scrape?passkey=abc"},
		{"http://t.example/abc123/announce.php", "http://t.example/abc123/scrape.php"},
		{"udp://t.example:6969/announce", "udp://t.example:6969/announce"},
	}
	for _, tt := range tests {
		got, err := ScrapeURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ScrapeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{
		"http://t.example/a", "http://t.example/announce/x", "http://t.example/x?announce",
		"http://announce", "http://t.example/", "ftp://t.example/announce", "http://t.example/x%zz/announce",
	} {
		if got, err := ScrapeURL(in); err == nil {
			t.Errorf("ScrapeURL(%q) = %q, want error", in, got)
		}
	}
}

func TestHTTPScrape(t *testing.T) {
	h1, h2, h3 := [20]byte{1}, [20]byte{'&', 0xff}, [20]byte{3}
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/scrape" || r.URL.Query().Get("passkey") != "pk" {
			http.NotFound(w, r)
			return
		}
		seen = r.URL.Query()["info_hash"]
		w.Write(mustMarshal(t, map[string]any{"files": map[string]any{
			string(h1[:]): map[string]any{"complete": int64(1), "downloaded": int64(2), "incomplete": int64(3)},
			string(h2[:]): map[string]any{"complete": int64(4), "downloaded": int64(5), "incomplete": int64(6), "name": "x"},
		}}))
	}))
	defer srv.Close()
	got, err := (&Client{}).Scrape(ctxT(t), srv.URL+"/announce?passkey=pk", [][20]byte{h1, h2, h3})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[1] != string(h2[:]) {
		t.Errorf("server saw info hashes %q", seen)
	}
	if len(got) != 2 || got[h1] != (ScrapeStats{1, 2, 3}) || got[h2] != (ScrapeStats{4, 5, 6}) {
		t.Errorf("scrape = %v", got)
	}
}

func TestParseScrapeResponseErrors(t *testing.T) {
	tests := []struct{ body, err string }{
		{"de", `lacks required key "files"`},
		{"d5:filesi1ee", `key "files" is an integer`},
		{"d5:filesd3:abcdeee", "key \"abc\" is 3 bytes"},
		{"d5:filesd20:aaaaaaaaaaaaaaaaaaaai1eee", "is an integer, want dictionary"},
		{"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei-1eeee", `key "complete" value -1`},
	}
	for _, tt := range tests {
		_, err := parseScrapeResponse([]byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: err = %v, want containing %q", tt.body, err, tt.err)
		}
	}
	_, err := parseScrapeResponse([]byte("d14:failure reason4:nopee"))
	var fe *FailureError
	if !errors.As(err, &fe) {
		t.Errorf("failure reason: %v", err)
	}
}

func TestEventString(t *testing.T) {
	for e, want := range map[Event]string{None: "", Started: "started", Completed: "completed", Stopped: "stopped", 9: "Event(9)"} {
		if got := e.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(e), got, want)
		}
	}
}

func TestParseExternalIP(t *testing.T) {
	for body, want := range map[string]string{
		"d8:intervali60e11:external ip4:\xcb\x00\x71\x07e":                                                  "203.0.113.7",
		"d8:intervali60e11:external ip16:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01e": "2001:db8::1",
		"d8:intervali60e11:external ip3:abce":                                                               "invalid IP",
		"d8:intervali60e11:external ipi5ee":                                                                 "invalid IP",
	} {
		r, err := ParseAnnounceResponse([]byte(body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if got := r.ExternalIP.String(); got != want {
			t.Errorf("%q: external ip %s, want %s", body, got, want)
		}
	}
}
