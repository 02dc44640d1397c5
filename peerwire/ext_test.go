package peerwire

import (
	"net/netip"
	"strings"
	"testing"
)

func FuzzExtHandshake(f *testing.F) {
	f.Add([]byte("d1:md11:ut_metadatai1e6:ut_pexi2ee1:pi6881e4:reqqi500e1:v11:Sower 0.1.0e"))
	f.Add([]byte("d1:md6:ut_pexi0ee4:reqqi-5e1:pi70000ee"))
	f.Add([]byte("d1:md11:ut_metadatai300eee"))
	f.Add([]byte("d1:m5:hello1:pi1ee"))
	f.Add([]byte("d13:metadata_sizei-3ee"))
	f.Add([]byte("de"))
	f.Add([]byte("d1:ei1ee"))
	f.Add([]byte("l"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		x, err := ParseExtHandshake(payload)
		if err != nil {
			return
		}
		if x.Reqq < 0 || x.Reqq > MaxReqq || len(x.Client) > MaxClientName {
			t.Fatalf("out of range: %+v", x)
		}
		for name, id := range x.M {
			if id < 0 || id > 255 {
				t.Fatalf("extension %q id %d", name, id)
			}
			if got, ok := x.ID(name); ok != (id > 0) || int(got) != id && ok {
				t.Fatalf("ID(%q) = %d, %v for %d", name, got, ok, id)
			}
		}
		// What we parse, we can send back and read the same.
		m, err := x.Message()
		if err != nil {
			t.Fatal(err)
		}
		y, err := ParseExtHandshake(m.Payload)
		if err != nil || y.Port != x.Port || y.Client != x.Client || y.Reqq != x.Reqq || len(y.M) != len(x.M) || y.Encryption != x.Encryption {
			t.Fatalf("round trip: %+v -> %+v (%v)", x, y, err)
		}
	})
}

func TestParseExtHandshake(t *testing.T) {
	x, err := ParseExtHandshake([]byte("d1:md11:ut_metadatai3e6:ut_pexi0e3:badi300ee13:metadata_sizei31235e1:pi51413e4:reqqi99999e1:v4:qBite"))
	if err != nil {
		t.Fatal(err)
	}
	if x.Reqq != MaxReqq || x.Client != "qBit" || x.Port != 51413 || x.MetadataSize != 31235 {
		t.Fatalf("got %+v", x)
	}
	if id, ok := x.ID("ut_metadata"); !ok || id != 3 {
		t.Errorf("ut_metadata id %d, %v", id, ok)
	}
	if _, ok := x.ID("ut_pex"); ok {
		t.Error("ut_pex turned off (id 0) but reported on")
	}
	if _, ok := x.M["bad"]; ok {
		t.Error("id 300 kept")
	}
	if _, err := ParseExtHandshake([]byte("d1:m")); err == nil {
		t.Fatal("truncated handshake accepted")
	}
	// A client name of exactly MaxClientName bytes is kept, one more is not.
	long := strings.Repeat("x", MaxClientName)
	if x, _ := ParseExtHandshake([]byte("d1:v64:" + long + "e")); x.Client != long {
		t.Errorf("a %d-byte name dropped", MaxClientName)
	}
	if x, _ := ParseExtHandshake([]byte("d1:v65:" + long + "xe")); x.Client != "" {
		t.Errorf("a %d-byte name kept", MaxClientName+1)
	}
	if x, _ := ParseExtHandshake([]byte("de")); x.MetadataSize != -1 || x.YourIP.IsValid() {
		t.Errorf("absent metadata_size = %d, yourip %v; want -1 and none", x.MetadataSize, x.YourIP)
	}
	if x, _ := ParseExtHandshake([]byte("d6:yourip4:\xcb\x00\x71\x07e")); x.YourIP != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("yourip %v", x.YourIP)
	}
	if x, _ := ParseExtHandshake([]byte("d6:yourip3:abce")); x.YourIP.IsValid() {
		t.Errorf("a 3-byte yourip taken as %v", x.YourIP)
	}
	m, _ := ExtHandshake{YourIP: netip.MustParseAddr("2001:db8::1")}.Message()
	if x, _ := ParseExtHandshake(m.Payload); x.YourIP != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("yourip round trip: %v", x.YourIP)
	}
	if x, _ := ParseExtHandshake([]byte("d1:ei1ee")); !x.Encryption {
		t.Error(`"e": 1 not read as preferring encryption`)
	}
	for _, p := range []string{"d1:ei0ee", "d1:e1:1e", "de"} {
		if x, _ := ParseExtHandshake([]byte(p)); x.Encryption {
			t.Errorf("%s read as preferring encryption", p)
		}
	}
	if m, _ := (ExtHandshake{Encryption: true}).Message(); !strings.Contains(string(m.Payload), "1:ei1e") {
		t.Errorf("sent %q, want e=1", m.Payload)
	}
}
