package bitfield

import "testing"

func TestFromBytes(t *testing.T) {
	f := New(10)
	f.Set(0)
	f.Set(9)
	if got := f.Bytes(); got[0] != 0x80 || got[1] != 0x40 {
		t.Fatalf("wire form %x", got)
	}
	g, err := FromBytes(f.Bytes(), 10)
	if err != nil || !g.Has(0) || !g.Has(9) || g.Has(1) || g.Count() != 2 {
		t.Fatalf("round trip: %v %v", g, err)
	}
	if _, err := FromBytes([]byte{0, 0x20}, 10); err != ErrSpareBits {
		t.Fatalf("spare bits: %v", err)
	}
	if _, err := FromBytes([]byte{0}, 10); err == nil {
		t.Fatal("short bitfield accepted")
	}
	f.SetAll()
	if !f.Full() || f.Bytes()[1] != 0xc0 {
		t.Fatalf("SetAll: %x", f.Bytes())
	}
	if f.Has(10) || f.Has(-1) {
		t.Fatal("out of range Has")
	}
}
