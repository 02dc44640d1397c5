package dht

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sowerbt/sower/dht/internal/memnet"
)

// TestPairCoversBothFamilies runs a small IPv4 DHT and a small IPv6 DHT
// side by side: a node paired with an IPv6 node finds peers announced in
// either, announces in both, and hands IPv6 addresses to its partner.
func TestPairCoversBothFamilies(t *testing.T) {
	mn := memnet.New()
	listen6 := func(i int) *memnet.Conn {
		c, err := mn.ListenAddr(netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}), 6881))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var v4, v6 []*Node
	for i := range 12 {
		v4 = append(v4, startNode(t, mn, Config{}))
		v6 = append(v6, startNode(t, mn, Config{Conn: listen6(i)}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, nw := range [][]*Node{v4, v6} {
		for _, n := range nw[1:] {
			n.AddNode(nw[0].Addr())
			if err := n.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	me4, me6 := v4[11], v6[11]
	if err := me4.Pair(me4); err == nil {
		t.Fatal("a node paired with itself")
	}
	if err := me4.Pair(v4[10]); err == nil {
		t.Fatal("a node paired with one of its own family")
	}
	if err := me4.Pair(me6); err != nil {
		t.Fatal(err)
	}
	if err := me6.Pair(me4); err == nil {
		t.Fatal("nodes paired both ways")
	}

	ih := [20]byte{0xab, 0xcd}
	if err := v4[3].Announce(ctx, ih, 1004, false); err != nil {
		t.Fatal(err)
	}
	if err := v6[5].Announce(ctx, ih, 1006, false); err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.AddrPortFrom(v4[3].Addr().Addr(), 1004),
		netip.AddrPortFrom(v6[5].Addr().Addr(), 1006),
	}
	ch, err := me4.GetPeers(ctx, ih)
	if err != nil {
		t.Fatal(err)
	}
	var got []netip.AddrPort
	for p := range ch {
		got = append(got, p)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("paired GetPeers found %v, missing %v", got, w)
		}
	}

	// A node whose own family has no network yet: its lookup ends at
	// once, and must not cut its partner's short.
	lone := startNode(t, mn, Config{})
	if err := lone.Pair(v6[10]); err != nil {
		t.Fatal(err)
	}
	ch, err = lone.GetPeers(ctx, ih)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for p := range ch {
		got = append(got, p)
	}
	if !slices.Equal(got, want[1:]) {
		t.Errorf("GetPeers of a node alone in its family found %v, want %v through its partner", got, want[1:])
	}

	ih2 := [20]byte{0x12, 0x34}
	if err := me4.Announce(ctx, ih2, 2000, false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{v4[0], v6[0]} {
		peers, _, err := n.LookupPeers(ctx, ih2)
		if err != nil {
			t.Fatal(err)
		}
		if len(peers) != 1 || peers[0].Port() != 2000 || peers[0].Addr().Is6() != n.v6 {
			t.Errorf("%s found %v after the paired announce, want our port 2000 in its family", n.Addr(), peers)
		}
	}

	extra := netip.AddrPortFrom(netip.MustParseAddr("2001:db8::99"), 7000)
	me4.AddNode(extra)
	me6.mu.Lock()
	handed := slices.Contains(me6.extraSeeds, extra)
	me6.mu.Unlock()
	if !handed {
		t.Error("AddNode of an IPv6 address did not reach the IPv6 partner")
	}
}
