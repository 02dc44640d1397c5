package utp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestParsePacket(t *testing.T) {
	h := header{typ: stData, connID: 0x1234, ts: 0xdeadbeef, tsDiff: 7, wnd: 1 << 20, seq: 65535, ack: 3}
	b := make([]byte, headerLen)
	putHeader(b, &h)
	// A selective ack of 3 bytes (as libtorrent sends), then an unknown
	// extension, then the payload.
	b[1] = extSack
	b = append(b, 0x77, 3, 0x05, 0, 0x80)
	b = append(b, 0, 2, 0xaa, 0xbb)
	b = append(b, "payload"...)
	p, err := parsePacket(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.typ != stData || p.connID != 0x1234 || p.ts != 0xdeadbeef || p.tsDiff != 7 || p.wnd != 1<<20 || p.seq != 65535 || p.ack != 3 {
		t.Fatalf("header %+v", p.header)
	}
	if !bytes.Equal(p.sack, []byte{0x05, 0, 0x80}) || string(p.payload) != "payload" {
		t.Fatalf("sack %x payload %q", p.sack, p.payload)
	}

	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", b[:19], errShort},
		{"version", append([]byte{0x02}, b[1:]...), errVersion},
		{"type", append([]byte{5<<4 | 1}, b[1:]...), errType},
		{"extension past the end", b[:headerLen+3], errExtension},
		{"empty sack", append(append([]byte(nil), b[:headerLen]...), 0, 0), errSackLength},
	} {
		if _, err := parsePacket(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestPadding checks that a probe padded to any size parses back to its
// payload, at exactly the size asked for (one byte more for a 1-byte pad).
func TestPadding(t *testing.T) {
	payload := []byte("data")
	for pad := 0; pad <= 1200; pad++ {
		b := make([]byte, headerLen)
		var first uint8
		b, first = appendPad(b, pad, 0)
		putHeader(b, &header{typ: stData, ext: first})
		b = append(b, payload...)
		if want := headerLen + padLen(pad) + len(payload); len(b) != want {
			t.Fatalf("pad %d: %d bytes, want %d", pad, len(b), want)
		}
		p, err := parsePacket(b)
		if err != nil || !bytes.Equal(p.payload, payload) {
			t.Fatalf("pad %d: %v, payload %q", pad, err, p.payload)
		}
	}
}

// TestMaxPacketExtension reads the largest-datagram extension a SYN
// carries.
func TestMaxPacketExtension(t *testing.T) {
	b := make([]byte, headerLen)
	putHeader(b, &header{typ: stSyn, ext: extMaxPacket})
	b = append(b, 0, 4)
	b = binary.BigEndian.AppendUint32(b, 65507)
	p, err := parsePacket(b)
	if err != nil || p.maxPacket != 65507 {
		t.Fatalf("max packet %d, %v", p.maxPacket, err)
	}
}

func FuzzParsePacket(f *testing.F) {
	for typ := uint8(0); typ <= stSyn; typ++ {
		f.Add(rawPacket(typ, 1, 2, 3, []byte("x")))
	}
	sack := rawPacket(stState, 1, 2, 3, nil)
	sack[1] = extSack
	f.Add(append(sack, 0, 4, 1, 2, 3, 4))
	f.Add([]byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePacket(b)
		if err != nil {
			return
		}
		if !IsPacket(b) {
			t.Fatal("parsed a datagram IsPacket rejects")
		}
		var again [headerLen]byte
		putHeader(again[:], &p.header)
		if !bytes.Equal(again[:], b[:headerLen]) {
			t.Fatalf("header re-encodes as %x, was %x", again, b[:headerLen])
		}
		if len(p.payload) > len(b)-headerLen || (p.sack != nil && len(p.sack) == 0) {
			t.Fatal("slices out of range")
		}
		// Feeding it to a Socket with no connections costs at most one
		// RESET and no state.
		s := NewSocket(discard{}, Config{})
		s.HandlePacket(b, netipLoopback)
		if s.resetsSent.Load() > 1 || (s.NumConns() > 0 && p.typ != stSyn) {
			t.Fatalf("%d resets, %d connections", s.resetsSent.Load(), s.NumConns())
		}
		s.Close()
	})
}
