package magnet

import (
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// formats to a link that parses back to the same Magnet and the same text.
func FuzzParse(f *testing.F) {
	f.Add(xtPrefix + hexHash)
	f.Add(xtPrefix + b32Hash + "&dn=n%20a+m&xl=10&tr=udp://t:1/a&tr=udp://t:1/a&ws=http://w/&x.pe=[::1]:1&x.pe=h.example:2&so=0,2-4")
	f.Add("magnet:?xt=urn:btmh:1220ab&xt.1=urn:btih:" + hexHash + "&so=1-2-3")
	f.Add("magnet:?xt=urn:btih:" + hexHash + "&xt=urn:btih:" + b32Hash + "&dn=%zz")
	f.Add("magnet:?x.pe=[fe80::1%25eth0]:1&xt=urn:sha1:abc")
	f.Add("MAGNET:?XT=URN:BTIH:" + hexHash + "&&&=&so=")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			if m != nil {
				t.Fatal("non-nil Magnet with an error")
			}
			return
		}
		out := m.String()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but its String %q fails: %v", s, out, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip of %q\n got  %+v\n want %+v", s, again, m)
		}
		if out2 := again.String(); out2 != out {
			t.Fatalf("String not stable: %q then %q", out, out2)
		}
	})
}
