package dht

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/dht/internal/memnet"
)

// TestPeerStoreOneIPManyPorts announces one public IP with 70 ports into a
// torrent whose swarm holds 150 real peers: the IP keeps at most
// maxPeersPerIP slots and no real peer is pushed out (it used to take 70
// slots and, at the 200-peer bound, evict real peers).
func TestPeerStoreOneIPManyPorts(t *testing.T) {
	now := time.Now()
	s := newPeerStore(DefaultMaxPeers, DefaultMaxPeersPerTorrent, time.Hour)
	ih := [20]byte{1}
	for i := range 150 {
		s.add(ih, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i / 200), byte(1 + i%200)}), 6881), now)
	}
	attacker := netip.MustParseAddr("203.0.113.7")
	for p := range 70 {
		s.add(ih, netip.AddrPortFrom(attacker, uint16(10000+p)), now.Add(time.Duration(p+1)*time.Millisecond))
	}
	real, theirs := 0, 0
	for a := range s.swarms[ih] {
		if a.Addr() == attacker {
			theirs++
		} else {
			real++
		}
	}
	if theirs > maxPeersPerIP || real != 150 {
		t.Errorf("one IP with 70 ports: it holds %d slots (want at most %d), %d of 150 real peers kept", theirs, maxPeersPerIP, real)
	}
	// Loopback and private addresses are exempt: local swarms share them.
	for p := range 10 {
		s.add([20]byte{2}, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(20000+p)), now)
	}
	if n := len(s.swarms[[20]byte{2}]); n != 10 {
		t.Errorf("10 loopback ports: %d kept", n)
	}
}

// TestTableOneNodePerIPAndSubnet offers the routing table many verified
// nodes from one public IP (other ports and ids) and from one /24: it
// takes one per IP in the table and one per /24 in a bucket, as libtorrent
// does, so one host cannot fill the table around an id.
func TestTableOneNodePerIPAndSubnet(t *testing.T) {
	now := time.Now()
	self := [20]byte{0x00}
	tb := newTable(self, false, now)
	ip := netip.MustParseAddr("203.0.113.7")
	for i := range 20 {
		id := [20]byte{0x80, byte(i), 1} // all in bucket 0
		tb.seen(contact{id: id, addr: netip.AddrPortFrom(ip, uint16(1000+i))}, true, now)
	}
	for i := range 20 {
		id := [20]byte{0x90, byte(i), 2}
		tb.seen(contact{id: id, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}), 6881)}, true, now)
	}
	perIP := map[netip.Addr]int{}
	subnet := 0
	for _, c := range tb.all() {
		perIP[c.addr.Addr()]++
		if netip.MustParsePrefix("198.51.100.0/24").Contains(c.addr.Addr()) {
			subnet++
		}
	}
	if perIP[ip] != 1 || subnet != 1 {
		t.Errorf("table holds %d nodes of one IP and %d of one /24 in one bucket, want 1 and 1 (%d in all)", perIP[ip], subnet, tb.size)
	}
	if tb.wouldInsert(contact{id: [20]byte{0xa0}, addr: netip.AddrPortFrom(ip, 9)}, now) {
		t.Error("wouldInsert accepts a second node of an IP in the table")
	}
}

// TestLimiterDegrades fills the rate limiter's table with (spoofed)
// sources: a new node is still answered, the oldest entries giving way
// (it used to be refused until entries went idle).
func TestLimiterDegrades(t *testing.T) {
	now := time.Now()
	l := newLimiter(1, 2, 100)
	for i := range 10_000 {
		l.allow(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), now)
	}
	if !l.allow(netip.MustParseAddr("198.51.100.1"), now) {
		t.Error("a new source is refused once the limiter tracks its maximum of sources")
	}
	if len(l.ips) > 100 || l.lru.Len() != len(l.ips) {
		t.Errorf("limiter tracks %d sources (list %d), bound 100", len(l.ips), l.lru.Len())
	}
	// A source heard from recently keeps its (empty) bucket.
	busy := netip.MustParseAddr("198.51.100.2")
	for range 3 {
		l.allow(busy, now)
	}
	for i := range 50 {
		l.allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), now)
	}
	if l.allow(busy, now) {
		t.Error("a source that used its burst got a token back by others' arrival")
	}
}

// TestAnswerToUnprovenAddress sends get_peers and find_node from an
// address the node has not verified: the answers are at most
// maxAmplification times the query, and a get_peers answer still carries
// peers (a 99-byte get_peers drew a 499-byte answer before).
func TestAnswerToUnprovenAddress(t *testing.T) {
	mn := memnet.New()
	node := startNode(t, mn, Config{})
	ih := [20]byte{7, 7, 7}
	node.mu.Lock()
	for i := range 60 {
		node.peers.add(ih, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 6881), time.Now())
	}
	node.mu.Unlock()
	// Nodes in the table, so find_node has 8 to give.
	for i := range 40 {
		var id [20]byte
		id[0], id[1] = byte(i*6), byte(i)
		node.mu.Lock()
		node.table.seen(contact{id: id, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 6881)}, true, time.Now())
		node.mu.Unlock()
	}
	conn, err := mn.ListenAddr(netip.MustParseAddrPort("203.0.113.9:4000"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name string
		a    map[string]any
	}{
		{"get_peers", map[string]any{"id": otherID, "info_hash": string(ih[:])}},
		{"find_node", map[string]any{"id": otherID, "target": string(ih[:])}},
		{"find_node", map[string]any{"id": otherID, "target": string(ih[:]), "want": []string{"n4", "n6"}}},
	} {
		b, _ := bencode.Marshal(map[string]any{"t": "aa", "y": "q", "q": q.name, "a": q.a})
		if _, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(node.Addr())); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, maxPacket)
		var m *msg
		var n int
		for m == nil || m.Y == "q" { // skip the node's verifying ping
			if n, _, err = conn.ReadFrom(buf); err != nil {
				t.Fatalf("%s: no answer: %v", q.name, err)
			}
			if m, err = decodeMsg(buf[:n]); err != nil {
				t.Fatal(err)
			}
		}
		if n > maxAmplification*len(b) {
			t.Errorf("%s of %d bytes from an unproven address: %d-byte answer, over %dx", q.name, len(b), n, maxAmplification)
		}
		if m.R == nil || q.name == "get_peers" && len(m.R.Values) == 0 || q.name == "find_node" && len(m.R.Nodes) == 0 {
			t.Errorf("%s: answer %s lost what was asked for", q.name, fmt.Sprint(m.R))
		}
	}
}
