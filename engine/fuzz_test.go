package engine

import (
	"bytes"
	"net/netip"
	"testing"
)

func FuzzPEX(f *testing.F) {
	f.Add([]byte("d5:added6:\x7f\x00\x00\x01\x1a\xe17:added.f1:\x00e"))
	f.Add([]byte("d6:added618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1e"))
	f.Add([]byte("d5:added5:\x7f\x00\x00\x01\x1ae"))
	f.Add([]byte("d5:added6:\x7f\x00\x00\x01\x00\x00e"))
	f.Add([]byte("d7:dropped6:\x7f\x00\x00\x01\x1a\xe1e"))
	f.Add([]byte("i3e"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		addrs, encrypt, err := parsePEX(payload)
		if err != nil {
			return
		}
		if len(encrypt) > len(addrs) {
			t.Fatalf("%d flagged encrypted of %d", len(encrypt), len(addrs))
		}
		if len(addrs) > 2*pexMax {
			t.Fatalf("%d addresses, more than 2x%d", len(addrs), pexMax)
		}
		for _, a := range addrs {
			if a.Port() == 0 || !a.Addr().IsValid() {
				t.Fatalf("bad address %v", a)
			}
		}
	})
}

func TestParsePEX(t *testing.T) {
	payload := []byte("d5:added12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x02\x00\x006:added618:" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2e")
	addrs, encrypt, err := parsePEX(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(encrypt) != 0 {
		t.Errorf("%v flagged encrypted without added.f", encrypt)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6881"), netip.MustParseAddrPort("[::1]:6882")}
	if len(addrs) != len(want) || addrs[0] != want[0] || addrs[1] != want[1] {
		t.Fatalf("got %v, want %v (port 0 skipped)", addrs, want)
	}
	many := bytes.Repeat([]byte("\x7f\x00\x00\x01\x1a\xe1"), 3*pexMax)
	msg := append([]byte("d5:added900:"), many...)
	msg = append(msg, 'e')
	if addrs, _, err := parsePEX(msg); err != nil || len(addrs) != pexMax {
		t.Fatalf("%d addresses, err %v; want the first %d", len(addrs), err, pexMax)
	}
	if _, _, err := parsePEX([]byte("d5:addedi3ee")); err == nil {
		t.Fatal("an integer for added was accepted")
	}
	// added.f's 0x01 marks a peer that prefers encryption.
	flagged := []byte("d5:added12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x02\x1a\xe17:added.f2:\x12\x01e")
	addrs, encrypt, err = parsePEX(flagged)
	if err != nil || len(addrs) != 2 || len(encrypt) != 1 || encrypt[0] != netip.MustParseAddrPort("127.0.0.2:6881") {
		t.Fatalf("flags: addrs %v, encrypted %v, err %v", addrs, encrypt, err)
	}
}
