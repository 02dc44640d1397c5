package dht

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/dht/internal/memnet"
)

// rawPeer is a hand-driven KRPC endpoint for feeding a node crafted
// datagrams.
type rawPeer struct {
	t    *testing.T
	conn *memnet.Conn
}

func (p *rawPeer) send(to *Node, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteTo(b, net.UDPAddrFromAddrPort(to.Addr())); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next reply or error decoded, or nil if none arrives
// within wait (a bound on the test, not a timing assertion). Queries the
// node sends us (pings verifying our address) are skipped.
func (p *rawPeer) recv(wait time.Duration) *msg {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, maxPacket)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			return nil
		}
		m, err := decodeMsg(buf[:n])
		if err != nil {
			p.t.Fatalf("node sent an invalid message %q: %v", buf[:n], err)
		}
		if m.Y != "q" {
			return m
		}
	}
}

func (p *rawPeer) query(to *Node, q string, a map[string]any) *msg {
	p.t.Helper()
	b, err := bencode.Marshal(map[string]any{"t": "aa", "y": "q", "q": q, "a": a})
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(to, b)
	m := p.recv(5 * time.Second)
	if m == nil {
		p.t.Fatalf("no reply to %s", q)
	}
	return m
}

// startNode runs a single node on net (on cfg.Conn if set, else at a
// fresh IPv4 address) until the test ends.
func startNode(t *testing.T, mn *memnet.Network, cfg Config) *Node {
	t.Helper()
	if cfg.Conn == nil {
		cfg.Conn = mn.Listen()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	<-n.running
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return n
}

var otherID = strings.Repeat("\x01", 20)

func TestBadInput(t *testing.T) {
	mn := memnet.New()
	node := startNode(t, mn, Config{RateLimit: -1})
	p := &rawPeer{t: t, conn: mn.Listen()}
	own := string(node.id[:])
	nested := strings.Repeat("l", 100) + strings.Repeat("e", 100)
	cases := []struct {
		name string
		pkt  string
		code int // 0: dropped without reply
	}{
		{"not bencode", "hello", 0},
		{"empty", "", 0},
		{"list", "le", 0},
		{"no transaction id", "d1:y1:qe", 0},
		{"truncated", "d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:" + otherID, 0},
		{"deep nesting", "d1:t2:aa1:y1:q1:q4:ping1:a" + nested + "e", 0},
		{"huge packet", "d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:" + otherID + "1:x9000:" + strings.Repeat("x", 9000) + "ee", 0},
		{"a is a list", "d1:ali1ee1:q4:ping1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"missing a", "d1:q4:ping1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"id too short", "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"id an integer", "d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"missing q", "d1:ad2:id20:" + otherID + "e1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"unknown y", "d1:ad2:id20:" + otherID + "e1:q4:ping1:t2:aa1:y1:xe", 0},
		{"own id", "d1:ad2:id20:" + own + "e1:q4:ping1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"unknown method", "d1:ad2:id20:" + otherID + "e1:q5:store1:t2:aa1:y1:qe", ErrCodeMethod},
		{"find_node no target", "d1:ad2:id20:" + otherID + "e1:q9:find_node1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"find_node short target", "d1:ad2:id20:" + otherID + "6:target3:abce1:q9:find_node1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"get_peers no info_hash", "d1:ad2:id20:" + otherID + "e1:q9:get_peers1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"announce bad token", "d1:ad2:id20:" + otherID + "9:info_hash20:" + otherID + "4:porti80e5:token4:nopee1:q13:announce_peer1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"announce port out of range", "d1:ad2:id20:" + otherID + "9:info_hash20:" + otherID + "4:porti70000e5:token4:nopee1:q13:announce_peer1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"announce no port", "d1:ad2:id20:" + otherID + "9:info_hash20:" + otherID + "5:token4:nopee1:q13:announce_peer1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"port a string", "d1:ad2:id20:" + otherID + "9:info_hash20:" + otherID + "4:port2:xx5:token4:nopee1:q13:announce_peer1:t2:aa1:y1:qe", ErrCodeProtocol},
		{"long transaction id", "d1:ad2:id20:" + otherID + "e1:q4:ping1:t40:" + strings.Repeat("t", 40) + "1:y1:qe", 0},
		{"unsolicited reply", "d1:rd2:id20:" + otherID + "5:nodes25:" + strings.Repeat("n", 25) + "e1:t2:aa1:y1:re", 0},
		{"unsolicited error", "d1:eli201e3:bade1:t2:aa1:y1:ee", 0},
		{"duplicate keys", "d1:t2:aa1:t2:bb1:y1:qe", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p.t = t
			p.send(node, []byte(c.pkt))
			wait := 200 * time.Millisecond // only bounds how long we look for a reply that must not come
			if c.code != 0 {
				wait = 5 * time.Second
			}
			m := p.recv(wait)
			switch {
			case c.code == 0 && m != nil:
				t.Fatalf("expected no reply, got %+v", m)
			case c.code != 0 && m == nil:
				t.Fatalf("expected error %d, got no reply", c.code)
			case c.code != 0 && (m.Y != "e" || m.E.Code != c.code || m.T != "aa"):
				t.Fatalf("expected error %d for t=aa, got y=%q t=%q e=%+v", c.code, m.Y, m.T, m.E)
			}
			if c.code != 0 {
				t.Logf("error reply: %s", m.E.Msg)
			}
			// The node is still up and answering.
			r := p.query(node, "ping", map[string]any{"id": otherID})
			if r.Y != "r" || r.R.ID != own {
				t.Fatalf("ping after bad input: %+v", r)
			}
		})
	}
	if s := node.Stats(); s.Malformed == 0 || s.Unsolicited == 0 {
		t.Errorf("stats do not count bad input: %+v", s)
	}
}

func TestTokens(t *testing.T) {
	mn := memnet.New()
	node := startNode(t, mn, Config{RateLimit: -1})
	asker := &rawPeer{t: t, conn: mn.Listen()}
	thief := &rawPeer{t: t, conn: mn.Listen()}
	ih := strings.Repeat("\x07", 20)

	r := asker.query(node, "get_peers", map[string]any{"id": otherID, "info_hash": ih})
	if r.Y != "r" || r.R.Token == "" {
		t.Fatalf("get_peers reply without token: %+v", r)
	}
	tok := r.R.Token
	announce := func(p *rawPeer) *msg {
		return p.query(node, "announce_peer", map[string]any{"id": otherID, "info_hash": ih, "port": 6881, "token": tok})
	}
	if m := announce(thief); m.Y != "e" || m.E.Code != ErrCodeProtocol {
		t.Fatalf("token used from another IP was accepted: %+v", m)
	}
	if m := announce(asker); m.Y != "r" {
		t.Fatalf("fresh token refused: %+v", m.E)
	}
	r = thief.query(node, "get_peers", map[string]any{"id": otherID, "info_hash": ih})
	if len(r.R.Values) != 1 {
		t.Fatalf("stored peer not returned: %+v", r.R)
	}
	if p, _ := parseCompactAddr([]byte(r.R.Values[0])); p.Addr() != asker.conn.AddrPort().Addr() || p.Port() != 6881 {
		t.Fatalf("stored peer %v, want %v port 6881", p, asker.conn.AddrPort().Addr())
	}

	// Age the node's clock: still valid after 9 minutes, refused after 11.
	base := time.Now()
	node.mu.Lock()
	node.now = func() time.Time { return base.Add(9 * time.Minute) }
	node.mu.Unlock()
	if m := announce(asker); m.Y != "r" {
		t.Fatalf("9-minute-old token refused: %+v", m.E)
	}
	node.mu.Lock()
	node.now = func() time.Time { return base.Add(11 * time.Minute) }
	node.mu.Unlock()
	if m := announce(asker); m.Y != "e" || m.E.Code != ErrCodeProtocol {
		t.Fatalf("11-minute-old token accepted: %+v", m)
	}
}

func TestTokenRotation(t *testing.T) {
	now := time.Now()
	tk := newTokens(now)
	ip := netipMust("192.0.2.1")
	tok := tk.issue(ip, now)
	for _, c := range []struct {
		age  time.Duration
		want bool
	}{{0, true}, {4 * time.Minute, true}, {9*time.Minute + 59*time.Second, true}, {10 * time.Minute, false}, {time.Hour, false}} {
		tk2 := *tk
		if got := tk2.valid(tok, ip, now.Add(c.age)); got != c.want {
			t.Errorf("token aged %v: valid=%v, want %v", c.age, got, c.want)
		}
	}
	if tk.valid(tok, netipMust("192.0.2.2"), now) {
		t.Error("token valid for another IP")
	}
}

func TestFloodIsRateLimited(t *testing.T) {
	mn := memnet.New()
	node := startNode(t, mn, Config{RateLimit: 10, RateBurst: 20})
	flooder := &rawPeer{t: t, conn: mn.Listen()}
	ping, _ := bencode.Marshal(map[string]any{"t": "aa", "y": "q", "q": "ping", "a": map[string]any{"id": otherID}})
	const sent = 200 // fits the memnet queue, so only the limiter drops
	for range sent {
		flooder.send(node, ping)
	}
	replies := 0
	for flooder.recv(300*time.Millisecond) != nil {
		replies++
	}
	if replies >= sent/2 {
		t.Errorf("flood of %d pings got %d replies; the per-IP limit did not apply", sent, replies)
	}
	if node.Stats().RateLimited == 0 {
		t.Error("RateLimited not counted")
	}
	// Another IP is unaffected.
	other := &rawPeer{t: t, conn: mn.Listen()}
	if m := other.query(node, "ping", map[string]any{"id": otherID}); m.Y != "r" {
		t.Fatalf("other IP refused: %+v", m)
	}
}

func TestPeerStoreBounds(t *testing.T) {
	now := time.Now()
	s := newPeerStore(10, 4, time.Minute)
	ih := [20]byte{1}
	for i := range 6 {
		if !s.add(ih, netipPortMust("10.0.0.1", uint16(1000+i)), now.Add(time.Duration(i)*time.Second)) {
			t.Fatal("add refused under the bound")
		}
	}
	if got := len(s.get(ih, false, 100, now)); got != 4 {
		t.Fatalf("per-torrent bound: %d peers kept, want 4", got)
	}
	for i := range 6 {
		s.add([20]byte{2, byte(i)}, netipPortMust("10.0.0.2", 1), now)
	}
	if s.total > 10 {
		t.Fatalf("total %d exceeds bound 10", s.total)
	}
	if s.add([20]byte{3}, netipPortMust("10.0.0.3", 1), now) {
		t.Fatal("add accepted beyond the total bound")
	}
	if !s.add([20]byte{3}, netipPortMust("10.0.0.3", 1), now.Add(2*time.Minute)) {
		t.Fatal("add refused after everything expired")
	}
	if s.total != 1 {
		t.Fatalf("expired peers not dropped: total %d", s.total)
	}
}

func TestStatePersists(t *testing.T) {
	mn := memnet.New()
	dir := t.TempDir()
	file := filepath.Join(dir, "dht.state")
	var others []*Node
	for range 20 {
		others = append(others, startNode(t, mn, Config{}))
	}
	for _, o := range others[1:] {
		o.AddNode(others[0].Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := o.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	cfg := Config{Conn: mn.Listen(), StateFile: file, Bootstrap: []string{others[3].Addr().String()}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); first.Run(ctx) }()
	<-first.running
	if err := first.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	saved := first.Stats().Nodes
	cancel()
	<-done
	if saved == 0 {
		t.Fatal("bootstrap filled no table")
	}

	// Restart without bootstrap nodes: the state file provides id and nodes.
	cfg.Conn, cfg.Bootstrap = mn.Listen(), nil
	second, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID() != first.ID() {
		t.Fatalf("id not restored: %x, want %x", second.ID(), first.ID())
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	done2 := make(chan struct{})
	go func() { defer close(done2); second.Run(ctx2) }()
	defer func() { cancel2(); <-done2 }()
	<-second.running
	if err := second.Bootstrap(ctx2); err != nil {
		t.Fatalf("bootstrap from saved nodes: %v", err)
	}

	cancel2()
	<-done2
	// A damaged file is ignored with a warning, not fatal.
	if err := os.WriteFile(file, []byte("d2:id3:abce"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Conn = mn.Listen()
	third, err := New(cfg)
	if err != nil {
		t.Fatalf("damaged state file stopped the node: %v", err)
	}
	third.conn.Close()
	if _, err := loadState(fileState(file)); err == nil || !strings.Contains(err.Error(), "id is 3 bytes") {
		t.Fatalf("damaged state file error = %v", err)
	}
}

func TestTableSplitsOnlyOwnBucket(t *testing.T) {
	now := time.Now()
	var self [20]byte
	tb := newTable(self, false, now)
	// 100 nodes far from us (first bit set) fill only bucket 0.
	for i := range 100 {
		id := [20]byte{0x80 | byte(i), byte(i >> 8), 1}
		tb.seen(contact{id: id, addr: netipPortMust("10.1.0.1", uint16(i+1))}, true, now)
	}
	if got := len(tb.buckets[0].nodes); got != K {
		t.Fatalf("far bucket holds %d nodes, want %d", got, K)
	}
	// Nodes close to us split the table further.
	for i := range 40 {
		id := [20]byte{0, 0, byte(i)}
		tb.seen(contact{id: id, addr: netipPortMust("10.2.0.1", uint16(i+1))}, true, now)
	}
	if len(tb.buckets) < 10 {
		t.Fatalf("table has %d buckets after close nodes arrived", len(tb.buckets))
	}
	for i, b := range tb.buckets {
		if len(b.nodes) > K {
			t.Fatalf("bucket %d has %d nodes", i, len(b.nodes))
		}
		for _, e := range b.nodes {
			if tb.bucketIndex(e.id) != i {
				t.Fatalf("node %x in bucket %d, belongs in %d", e.id, i, tb.bucketIndex(e.id))
			}
		}
	}
	// A node failing twice is replaced from the replacement cache.
	victim := tb.buckets[0].nodes[0].contact
	tb.failed(victim, now)
	if tb.get(victim.id) == nil {
		t.Fatal("node removed after one failure")
	}
	tb.failed(victim, now)
	if tb.get(victim.id) != nil {
		t.Fatal("node kept after two failures")
	}
	if got := len(tb.buckets[0].nodes); got != K {
		t.Fatalf("bucket not refilled from replacements: %d nodes", got)
	}
	// Our own id never enters.
	tb.seen(contact{id: self, addr: netipPortMust("10.3.0.1", 1)}, true, now)
	if tb.get(self) != nil {
		t.Fatal("own id inserted")
	}
	// A refresh target falls in the bucket it refreshes.
	for i := range tb.buckets {
		id := tb.randomIDInBucket(i, [20]byte{0xff, 0xff, 0xff, 0xff, 0xff})
		if got := tb.bucketIndex(id); got != i {
			t.Fatalf("refresh id for bucket %d falls in bucket %d", i, got)
		}
	}
}

func TestCompactNodes(t *testing.T) {
	cs := []contact{
		{id: [20]byte{1}, addr: netipPortMust("10.0.0.1", 1)},
		{id: [20]byte{2}, addr: netipPortMust("2001:db8::1", 2)},
	}
	v4 := appendCompactNodes(nil, cs, false)
	v6 := appendCompactNodes(nil, cs, true)
	if len(v4) != nodeLenV4 || len(v6) != nodeLenV6 {
		t.Fatalf("lengths %d, %d", len(v4), len(v6))
	}
	got4, err := parseCompactNodes(string(v4), false)
	if err != nil || len(got4) != 1 || got4[0] != cs[0] {
		t.Fatalf("v4 round trip: %v %v", got4, err)
	}
	got6, err := parseCompactNodes(string(v6), true)
	if err != nil || len(got6) != 1 || got6[0] != cs[1] {
		t.Fatalf("v6 round trip: %v %v", got6, err)
	}
	if _, err := parseCompactNodes(string(v4[:25]), false); err == nil || !strings.Contains(err.Error(), "not a multiple of 26") {
		t.Fatalf("bad length error = %v", err)
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

func netipPortMust(s string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(s), port)
}
