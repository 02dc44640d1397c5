package trackerserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/tracker"
)

const (
	goodHash = "%AA%BB%CC%DD%EE%FF%00%11%22%33%44%55%66%77%88%99%AA%BB%CC%DD"
	goodPeer = "-SW0100-abcdefghijkl"
)

func TestHTTPBadInput(t *testing.T) {
	rt := start(t, Config{}, "4")
	base := "info_hash=" + goodHash + "&peer_id=" + goodPeer
	for _, tc := range []struct{ query, want string }{
		{"", "info_hash: missing"},
		{"peer_id=" + goodPeer + "&port=1", "info_hash: missing"},
		{"info_hash=" + goodHash + "&port=1", "peer_id: missing"},
		{base, "port: missing"},
		{"info_hash=abc&peer_id=" + goodPeer + "&port=1", "info_hash: 3 bytes, want 20"},
		{base + "&port=0", "port: 0 is not"},
		{base + "&port=70000", "port: 70000 is larger than 65535"},
		{base + "&port=x", "port: \"x\" is not a decimal number"},
		{base + "&port=1&uploaded=-5", "uploaded: negative value"},
		{base + "&port=1&left=99999999999999999999", "left: \"99999999999999999999\" is larger"},
		{base + "&port=1&event=bogus", "event: unknown event"},
		{base + "&port=1&compact=2", "compact: \"2\": want 0 or 1"},
		{base + "&port=1&port=2", "port: given more than once"},
		{base + "&port=1&x=%G1", "invalid percent escape \"%G1\""},
		{base + "&port=1&x=%4", "truncated percent escape"},
		{base + "&port=1&x=" + strings.Repeat("a", 9000), "bytes is longer than the limit of 8192"},
		{strings.Repeat("a&", 300), "more than 256 parameters"},
	} {
		body := get(t, rt.httpURL+"?"+tc.query)
		if !strings.HasPrefix(body, "d14:failure reason") || !strings.Contains(body, tc.want) {
			t.Errorf("query %.60q: got %.200q, want failure containing %q", tc.query, body, tc.want)
		}
	}
	// A billion peers wanted is not an error.
	body := get(t, rt.httpURL+"?"+base+"&port=1&numwant=1000000000&compact=0&no_peer_id=1")
	if _, err := tracker.ParseAnnounceResponse([]byte(body)); err != nil {
		t.Errorf("numwant=1e9: %v (%q)", err, body)
	}
	// Scrape errors.
	body = get(t, rt.base+"/scrape")
	if !strings.Contains(body, "info_hash: missing") {
		t.Errorf("empty scrape: %q", body)
	}
	body = get(t, rt.base+"/scrape?info_hash=short")
	if !strings.Contains(body, "info_hash: 5 bytes, want 20") {
		t.Errorf("short scrape hash: %q", body)
	}
	// A passkey path on an open tracker.
	body = get(t, rt.base+"/abc/announce?"+base+"&port=1")
	if !strings.Contains(body, "failure reason") {
		t.Errorf("passkey on open tracker: %q", body)
	}
}

func TestNonCompactResponse(t *testing.T) {
	rt := start(t, Config{}, "4")
	q := "info_hash=" + goodHash + "&port=7&left=1&compact=0&peer_id="
	get(t, rt.httpURL+"?"+q+goodPeer)
	body := get(t, rt.httpURL+"?"+q+"-SW0100-zzzzzzzzzzzz")
	if !strings.Contains(body, "2:ip9:127.0.0.17:peer id20:"+goodPeer+"4:porti7e") {
		t.Errorf("dictionary peers: %q", body)
	}
	r, err := tracker.ParseAnnounceResponse([]byte(body))
	if err != nil || len(r.Peers) != 1 || string(r.Peers[0].ID[:]) != goodPeer {
		t.Errorf("parsed %+v, %v", r, err)
	}
	body = get(t, rt.httpURL+"?"+q+"-SW0100-yyyyyyyyyyyy&no_peer_id=1")
	if strings.Contains(body, "peer id") {
		t.Errorf("no_peer_id=1 still sends ids: %q", body)
	}
}

func TestSlowlorisDoesNotBlock(t *testing.T) {
	rt := start(t, Config{}, "4")
	// A client that sends half a request line and stalls must not stop
	// others from being served.
	conn, err := net.Dial("tcp", strings.TrimPrefix(rt.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /announce?info_hash="))
	body := get(t, rt.httpURL+"?info_hash="+goodHash+"&peer_id="+goodPeer+"&port=9")
	if !strings.HasPrefix(body, "d8:complete") {
		t.Errorf("announce while a slow client is connected: %q", body)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// udpExchange sends pkt and returns the answer, or nil after a short wait.
func udpExchange(t *testing.T, conn *net.UDPConn, pkt []byte) []byte {
	t.Helper()
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestUDPBadInput(t *testing.T) {
	rt := start(t, Config{}, "4")
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(rt.udpAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hdr := func(conn uint64, action, tid uint32) []byte {
		b := binary.BigEndian.AppendUint64(nil, conn)
		b = binary.BigEndian.AppendUint32(b, action)
		return binary.BigEndian.AppendUint32(b, tid)
	}
	// Too short and wrong protocol id: dropped.
	for _, p := range [][]byte{nil, {1, 2, 3}, make([]byte, 15), hdr(12345, 0, 1)} {
		if got := udpExchange(t, conn, p); got != nil {
			t.Errorf("packet %x answered with %x, want dropped", p, got)
		}
	}
	resp := udpExchange(t, conn, hdr(udpProtocolID, 0, 77))
	if len(resp) != 16 || binary.BigEndian.Uint32(resp) != 0 || binary.BigEndian.Uint32(resp[4:]) != 77 {
		t.Fatalf("connect answer %x", resp)
	}
	cid := binary.BigEndian.Uint64(resp[8:])
	wantErr := func(p []byte, want string) {
		t.Helper()
		got := udpExchange(t, conn, p)
		if len(got) < 8 || binary.BigEndian.Uint32(got) != udpError || !strings.Contains(string(got[8:]), want) {
			t.Errorf("packet %.40x: got %q, want error containing %q", p, got, want)
		}
	}
	// A forged connection id: never an answer larger than the request
	// (the source address may be a reflection victim's).
	if got := udpExchange(t, conn, hdr(cid+1, 1, 5)); got != nil {
		t.Errorf("16-byte packet with a forged connection id answered with %d bytes", len(got))
	}
	forged := append(hdr(cid+1, 2, 5), make([]byte, 20)...)
	if got := udpExchange(t, conn, forged); len(got) > len(forged) {
		t.Errorf("%d-byte scrape with a forged connection id answered with %d bytes", len(forged), len(got))
	}
	wantErr(append(hdr(cid+1, 1, 5), make([]byte, 82)...), "bad or expired connection id")
	wantErr(hdr(cid, 9, 5), "unknown action 9")
	wantErr(hdr(cid, 1, 5), "announce of 16 bytes is shorter than 98")
	wantErr(hdr(cid, 2, 5), "scrape: 0 bytes")
	wantErr(append(hdr(cid, 2, 5), make([]byte, 21)...), "scrape: 21 bytes")
	wantErr(append(hdr(cid, 2, 5), make([]byte, 75*20)...), "75 info-hashes")
	ann := append(hdr(cid, 1, 5), make([]byte, 82)...)
	wantErr(ann, "port: 0")
	binary.BigEndian.PutUint16(ann[96:], 6881)
	binary.BigEndian.PutUint32(ann[80:], 9)
	wantErr(ann, "event: unknown value 9")
	binary.BigEndian.PutUint32(ann[80:], 0)
	binary.BigEndian.PutUint64(ann[64:], 1<<63)
	wantErr(ann, "left: negative")
	binary.BigEndian.PutUint64(ann[64:], 0)
	wantErr(append(bytes.Clone(ann), 2, 10, 'x'), "URLData of 10 bytes overruns")
	binary.BigEndian.PutUint32(ann[92:], 0xffffffff) // numwant -1
	got := udpExchange(t, conn, ann)
	if len(got) != 20 || binary.BigEndian.Uint32(got) != udpAnnounce {
		t.Errorf("valid announce got %x", got)
	}
	// The tracker is still up.
	if _, err := testClient().Scrape(ctx10(t), rt.udpURL, [][20]byte{{}}); err != nil {
		t.Errorf("scrape after bad packets: %v", err)
	}
}

func TestConnIDs(t *testing.T) {
	c, err := newConnIDs()
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort("192.0.2.1:1000")
	b := netip.MustParseAddrPort("192.0.2.2:1000")
	now := int64(1_000_000_020)
	id := c.issue(now, a)
	if !c.valid(now, a, id) || !c.valid(now+59, a, id) || !c.valid(now+60, a, id) {
		t.Error("id rejected within its lifetime")
	}
	if c.valid(now, b, id) {
		t.Error("id accepted from another address")
	}
	if c.valid(now+150, a, id) {
		t.Error("id accepted after two epochs")
	}
}

func TestTrustedProxyHeader(t *testing.T) {
	rt := start(t, Config{RealIPHeader: "X-Forwarded-For"}, "4")
	c := &http.Client{Timeout: 10 * time.Second}
	ann := func(xff, peer string) string {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", rt.httpURL+"?info_hash="+goodHash+"&port=5&left=1&compact=0&peer_id="+peer, nil)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	ann("10.9.9.9, 203.0.113.7", goodPeer)
	body := ann("", "-SW0100-zzzzzzzzzzzz")
	if !strings.Contains(body, "11:203.0.113.7") {
		t.Errorf("peer behind proxy: %q, want address 203.0.113.7", body)
	}
	if body := ann("not-an-ip", "-SW0100-yyyyyyyyyyyy"); !strings.Contains(body, "bad client address") {
		t.Errorf("bad header: %q", body)
	}
}
