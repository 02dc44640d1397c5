package magnet

import (
	"reflect"
	"strings"
	"testing"
)

const (
	hexHash  = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
	b32Hash  = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK" // the same hash in base32
	xtPrefix = "magnet:?xt=urn:btih:"
)

func hashBytes() [20]byte {
	return [20]byte{0xc1, 0x2f, 0xe1, 0xc0, 0x6b, 0xba, 0x25, 0x4a, 0x9d, 0xc9, 0xf5, 0x19, 0xb3, 0x35, 0xaa, 0x7c, 0x13, 0x67, 0xa8, 0x8a}
}

func TestParseValid(t *testing.T) {
	h := hashBytes()
	tests := []struct {
		name string
		in   string
		want Magnet
	}{
		{"hex lower", xtPrefix + hexHash, Magnet{InfoHash: h}},
		{"hex upper", xtPrefix + strings.ToUpper(hexHash), Magnet{InfoHash: h}},
		{"base32 upper", xtPrefix + b32Hash, Magnet{InfoHash: h}},
		{"base32 lower", xtPrefix + strings.ToLower(b32Hash), Magnet{InfoHash: h}},
		{"scheme case", "MAGNET:?XT=URN:BTIH:" + hexHash, Magnet{InfoHash: h}},
		{"everything", xtPrefix + hexHash +
			"&dn=Some+Name%20%26%20more&xl=12345" +
			"&tr=udp%3A%2F%2Ftracker.example.org%3A6969%2Fannounce&tr=http://t2.example/announce?k=1" +
			"&tr=udp%3A%2F%2Ftracker.example.org%3A6969%2Fannounce" + // duplicate dropped
			"&ws=https://seed.example/files/" +
			"&x.pe=10.0.0.1:6881&x.pe=[2001:db8::1]:51413&x.pe=peer.example.net:0080" +
			"&so=0,2,4-6&so=9",
			Magnet{
				InfoHash:   h,
				Name:       "Some Name & more",
				Length:     12345,
				Trackers:   []string{"udp://tracker.example.org:6969/announce", "http://t2.example/announce?k=1"},
				WebSeeds:   []string{"https://seed.example/files/"},
				Peers:      []string{"10.0.0.1:6881", "[2001:db8::1]:51413", "peer.example.net:80"},
				SelectOnly: []Range{{0, 0}, {2, 2}, {4, 6}, {9, 9}},
			}},
		{"params before xt and unknown ones", "magnet:?dn=x&foo=bar&kt=a+b&as=http://x&&xt=urn:btih:" + hexHash + "&flag",
			Magnet{InfoHash: h, Name: "x"}},
		{"btmh alongside btih", "magnet:?xt=urn:btmh:1220" + strings.Repeat("ab", 32) + "&xt=urn:btih:" + hexHash,
			Magnet{InfoHash: h}},
		{"numbered xt", "magnet:?xt.1=urn:ed2k:abc&xt.2=urn:btih:" + b32Hash, Magnet{InfoHash: h}},
		{"same btih twice", xtPrefix + hexHash + "&xt=urn:btih:" + b32Hash, Magnet{InfoHash: h}},
		{"first dn wins", xtPrefix + hexHash + "&dn=&dn=a&dn=b", Magnet{InfoHash: h, Name: "a"}},
		{"ipv6 canonical", xtPrefix + hexHash + "&x.pe=[0:0::1]:1", Magnet{InfoHash: h, Peers: []string{"[::1]:1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
			}
			again, err := Parse(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip of %s: %+v %v", got, again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `magnet: not a magnet URI (want prefix "magnet:?")`},
		{"http", "http://example.com/?xt=urn:btih:" + hexHash, `magnet: not a magnet URI (want prefix "magnet:?")`},
		{"no question mark", "magnet:xt=urn:btih:" + hexHash, `magnet: not a magnet URI (want prefix "magnet:?")`},
		{"missing xt", "magnet:?dn=foo&tr=http://t/a", "magnet: missing xt parameter"},
		{"not btih", "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C", `magnet: xt "urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C" is not a urn:btih topic`},
		{"v2 only", "magnet:?xt=urn:btmh:1220" + strings.Repeat("ab", 32), "magnet: v2-only magnet (urn:btmh without urn:btih) not supported"},
		{"short hash", xtPrefix + hexHash[:39], "magnet: xt at offset 8: btih hash is 39 characters long, want 40 (hex) or 32 (base32)"},
		{"empty hash", xtPrefix, "magnet: xt at offset 8: btih hash is 0 characters long, want 40 (hex) or 32 (base32)"},
		{"bad hex", xtPrefix + hexHash[:10] + "g" + hexHash[11:], `magnet: xt at offset 8: btih hex hash has invalid character 'g' at position 10`},
		{"bad hex utf8", xtPrefix + "é" + hexHash[2:], `magnet: xt at offset 8: btih hex hash has invalid character 'é' at position 0`},
		{"bad base32", xtPrefix + b32Hash[:5] + "1" + b32Hash[6:], `magnet: xt at offset 8: btih base32 hash has invalid character '1' at position 5`},
		{"conflicting btih", "magnet:?dn=x&xt=urn:btih:" + hexHash + "&xt=urn:btih:" + strings.Repeat("0", 40),
			"magnet: xt at offset 66: btih 0000000000000000000000000000000000000000 conflicts with earlier btih " + hexHash},
		{"bad escape", xtPrefix + hexHash + "&dn=%zz", `magnet: dn at offset 61: invalid URL escape "%zz"`},
		{"bad escape in name", xtPrefix + hexHash + "&d%n=1", `magnet: parameter name at offset 61: invalid URL escape "%n"`},
		{"bad xl", xtPrefix + hexHash + "&xl=-5", `magnet: xl at offset 61: "-5" is not a non-negative integer`},
		{"bad tr", xtPrefix + hexHash + "&tr=not%20a%20url", `magnet: tr at offset 61: "not a url" is not an absolute URL`},
		{"bad ws", xtPrefix + hexHash + "&ws=/relative", `magnet: ws at offset 61: "/relative" is not an absolute URL`},
		{"x.pe no port", xtPrefix + hexHash + "&x.pe=10.0.0.1", `magnet: x.pe at offset 61: "10.0.0.1" is not host:port (IPv6 as [addr]:port)`},
		{"x.pe bare ipv6", xtPrefix + hexHash + "&x.pe=::1:6881", `magnet: x.pe at offset 61: "::1:6881" is not host:port (IPv6 as [addr]:port)`},
		{"x.pe port zero", xtPrefix + hexHash + "&x.pe=10.0.0.1:0", `magnet: x.pe at offset 61: "10.0.0.1:0": port "0" is not in 1-65535`},
		{"x.pe port big", xtPrefix + hexHash + "&x.pe=10.0.0.1:65536", `magnet: x.pe at offset 61: "10.0.0.1:65536": port "65536" is not in 1-65535`},
		{"x.pe port name", xtPrefix + hexHash + "&x.pe=h:http", `magnet: x.pe at offset 61: "h:http": port "http" is not in 1-65535`},
		{"x.pe empty host", xtPrefix + hexHash + "&x.pe=:6881", `magnet: x.pe at offset 61: ":6881": bad host ""`},
		{"x.pe bad host", xtPrefix + hexHash + "&x.pe=a_b.example:1", `magnet: x.pe at offset 61: "a_b.example:1": bad host "a_b.example"`},
		{"x.pe bad ipv6", xtPrefix + hexHash + "&x.pe=[fe80::zz]:1", `magnet: x.pe at offset 61: "[fe80::zz]:1": bad host "fe80::zz"`},
		{"x.pe zone", xtPrefix + hexHash + "&x.pe=[fe80::1%25eth0]:1", `magnet: x.pe at offset 61: "[fe80::1%eth0]:1": address "fe80::1%eth0" has a zone`},
		{"so empty", xtPrefix + hexHash + "&so=", `magnet: so at offset 61: item 0 "": missing file index`},
		{"so trailing comma", xtPrefix + hexHash + "&so=1,", `magnet: so at offset 61: item 1 "": missing file index`},
		{"so letter", xtPrefix + hexHash + "&so=1,x", `magnet: so at offset 61: item 1 "x": file index "x" is not a decimal number`},
		{"so negative", xtPrefix + hexHash + "&so=-1", `magnet: so at offset 61: item 0 "-1": missing file index`},
		{"so open range", xtPrefix + hexHash + "&so=3-", `magnet: so at offset 61: item 0 "3-": missing file index`},
		{"so reversed", xtPrefix + hexHash + "&so=0,6-4", `magnet: so at offset 61: item 1 "6-4": range starts after it ends`},
		{"so huge", xtPrefix + hexHash + "&so=99999999999", `magnet: so at offset 61: item 0 "99999999999": file index "99999999999" exceeds 2147483647`},
		{"so three parts", xtPrefix + hexHash + "&so=1-2-3", `magnet: so at offset 61: item 0 "1-2-3": file index "2-3" is not a decimal number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("accepted as %+v", m)
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n %s\nwant\n %s", err, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	m := &Magnet{
		InfoHash:   hashBytes(),
		Name:       "a b+c&d=e/ü",
		Length:     7,
		Trackers:   []string{"udp://t.example:80/announce?x=1&y=2"},
		WebSeeds:   []string{"http://w.example/a b"},
		Peers:      []string{"[::1]:6881", "1.2.3.4:5"},
		SelectOnly: []Range{{1, 1}, {3, 5}},
	}
	want := xtPrefix + hexHash + "&dn=a%20b%2Bc%26d%3De/%C3%BC&xl=7" +
		"&tr=udp://t.example:80/announce?x%3D1%26y%3D2&ws=http://w.example/a%20b" +
		"&x.pe=%5B::1%5D:6881&x.pe=1.2.3.4:5&so=1,3-5"
	if got := m.String(); got != want {
		t.Fatalf("String\n %s\nwant\n %s", got, want)
	}
	again, err := Parse(want)
	if err != nil || !reflect.DeepEqual(again, m) {
		t.Fatalf("Parse(String()) = %+v, %v", again, err)
	}
	if got := (&Magnet{}).String(); got != xtPrefix+strings.Repeat("0", 40) {
		t.Fatalf("zero Magnet: %s", got)
	}
}

func TestSelected(t *testing.T) {
	all := &Magnet{}
	if !all.Selected(0) || !all.Selected(1000) {
		t.Fatal("no select-only list must select everything")
	}
	m := &Magnet{SelectOnly: []Range{{0, 0}, {2, 2}, {4, 6}}}
	for i, want := range []bool{true, false, true, false, true, true, true, false} {
		if m.Selected(i) != want {
			t.Errorf("Selected(%d) = %v", i, !want)
		}
	}
	if m.Selected(-1) {
		t.Error("negative index selected")
	}
}
