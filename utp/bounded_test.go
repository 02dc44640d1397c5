package utp

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// rawPacket encodes a bare packet.
func rawPacket(typ uint8, connID, seq, ack uint16, payload []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(payload))
	putHeader(b, &header{typ: typ, connID: connID, seq: seq, ack: ack, wnd: 1 << 20})
	return append(b, payload...)
}

// TestSynFlood floods a Socket with SYNs from many addresses and IDs that
// never follow up: it keeps at most MaxHalfOpen connections, answers each
// SYN it takes with one ack and the rest with nothing, and forgets them
// once they time out.
func TestSynFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		victim := n.add(t, simLink{}, Config{MaxHalfOpen: 32})
		attacker := n.add(t, simLink{}, Config{})
		const syns = 5000
		for i := range syns {
			from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(1000+i))
			victim.sock.HandlePacket(rawPacket(stSyn, uint16(i), 1, 0, nil), from)
		}
		if got := victim.sock.NumConns(); got != 32 {
			t.Fatalf("%d connections after %d SYNs, want the half-open cap 32", got, syns)
		}
		if got := victim.sock.synDropped.Load(); got != syns-32 {
			t.Fatalf("%d SYNs dropped, want %d", got, syns-32)
		}
		// Repeated SYNs of a held connection are answered, not counted twice.
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 0}), 1000)
		victim.sock.HandlePacket(rawPacket(stSyn, 0, 1, 0, nil), from)
		if got := victim.sock.NumConns(); got != 32 {
			t.Fatalf("%d connections after a repeated SYN", got)
		}
		time.Sleep(halfOpenIdle + time.Second)
		synctest.Wait()
		if got := victim.sock.NumConns(); got != 0 {
			t.Fatalf("%d half-open connections left after their time-out", got)
		}
		// Room again: a real peer connects, and Accept skips the dead
		// half-open connections queued before it.
		c, err := attacker.sock.DialAddrPort(t.Context(), victim.addr)
		if err != nil {
			t.Fatalf("dial after the flood: %v", err)
		}
		sc, err := victim.sock.AcceptUTP()
		if err != nil || sc.RemoteAddrPort() != attacker.addr {
			t.Fatalf("accepted %v, %v; want the real peer %v", sc.RemoteAddrPort(), err, attacker.addr)
		}
		c.Close()
		sc.Close()
	})
}

// TestUnknownPackets sends packets of connections the Socket does not
// know: it keeps no state and answers each with exactly one RESET no
// larger than the packet; RESETs themselves get no answer.
func TestUnknownPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		victim := n.add(t, simLink{}, Config{})
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), 4000)
		const k = 1000
		for i := range k {
			typ := []uint8{stData, stState, stFin}[i%3]
			victim.sock.HandlePacket(rawPacket(typ, uint16(i), uint16(i), 0, []byte("x")), from)
			victim.sock.HandlePacket(rawPacket(stReset, uint16(i), 0, 0, nil), from)
		}
		if got := victim.sock.resetsSent.Load(); got != k {
			t.Fatalf("%d RESETs for %d unknown packets (and %d RESETs), want %d", got, k, k, k)
		}
		if victim.sock.NumConns() != 0 {
			t.Fatalf("%d connections from unknown packets", victim.sock.NumConns())
		}
		if s := n.snapshot(); s.sent != k {
			t.Fatalf("%d datagrams sent, want %d", s.sent, k)
		}
	})
}

// TestNotUTP checks the classifier that splits a shared socket's
// datagrams between uTP and the DHT.
func TestNotUTP(t *testing.T) {
	krpc := []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
	if IsPacket(krpc) {
		t.Fatal("a KRPC query classified as uTP")
	}
	for typ := uint8(0); typ <= stSyn; typ++ {
		if !IsPacket(rawPacket(typ, 1, 1, 1, nil)) {
			t.Fatalf("a type %d packet not classified as uTP", typ)
		}
	}
	bad := rawPacket(stData, 1, 1, 1, nil)
	bad[0] = 5<<4 | 1
	if IsPacket(bad) || IsPacket(rawPacket(stData, 1, 1, 1, nil)[:19]) {
		t.Fatal("an unknown type or a short datagram classified as uTP")
	}
	s := NewSocket(discard{}, Config{})
	if s.HandlePacket(krpc, netip.MustParseAddrPort("127.0.0.1:1")) {
		t.Fatal("HandlePacket took a KRPC datagram")
	}
}

var netipLoopback = netip.MustParseAddrPort("127.0.0.1:9")
