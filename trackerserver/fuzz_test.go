package trackerserver

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func FuzzParseAnnounceQuery(f *testing.F) {
	f.Add("info_hash=" + goodHash + "&peer_id=" + goodPeer + "&port=6881&uploaded=0&downloaded=0&left=10&event=started&compact=1&numwant=50&key=abc")
	f.Add("info_hash=%00&port=0")
	f.Add("a=%&b=%zz&&=")
	f.Add(strings.Repeat("numwant=99999999999999999999999&", 3))
	f.Fuzz(func(t *testing.T, q string) {
		p, err := parseAnnounceQuery([]byte(q))
		if err != nil {
			if _, ok := err.(*queryError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if p.port == 0 || p.uploaded < 0 || p.downloaded < 0 || p.left < 0 || p.numWant < -1 {
			t.Fatalf("accepted invalid values: %+v", p)
		}
	})
}

func FuzzParseScrapeQuery(f *testing.F) {
	f.Add("info_hash=" + goodHash + "&info_hash=" + goodHash)
	f.Add("info_hash=abc")
	f.Add("")
	f.Fuzz(func(t *testing.T, q string) {
		hs, err := parseScrapeQuery([]byte(q), 10)
		if err == nil && len(hs) > 10 {
			t.Fatalf("%d hashes beyond the limit", len(hs))
		}
	})
}

func FuzzParseUDPRequest(f *testing.F) {
	connect := binary.BigEndian.AppendUint64(nil, udpProtocolID)
	connect = binary.BigEndian.AppendUint64(connect, 7)
	f.Add(connect)
	ann := make([]byte, 98)
	binary.BigEndian.PutUint32(ann[8:], 1)
	binary.BigEndian.PutUint16(ann[96:], 6881)
	f.Add(append(ann, 2, 10, '/', 'k', 'e', 'y', '/', 'a', 'n', 'n', 'o', 'u', 1, 0))
	sc := make([]byte, 16+40)
	binary.BigEndian.PutUint32(sc[8:], 2)
	f.Add(sc)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r, err := parseUDPRequest(pkt)
		if err != nil {
			if _, ok := err.(*udpPacketError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if len(r.hashes) > udpMaxScrape || len(r.urlData) > len(pkt) {
			t.Fatalf("unbounded result: %d hashes, %d url bytes", len(r.hashes), len(r.urlData))
		}
		if r.action == udpAnnounce && r.announce.port == 0 {
			t.Fatal("accepted port 0")
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"mode":"private","data":"/tmp/x","interval":"30m"}`))
	f.Add([]byte(`{"trusted_proxies":["::1/128"],"expire_factor":2.5}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err == nil {
			if err := c.validate(); err != nil {
				t.Fatalf("accepted config fails validation: %v", err)
			}
			c.withDefaults()
		}
	})
}

// FuzzRealIPHeader checks the real-IP header of a trusted proxy: any value
// is refused or gives a valid address, and an untrusted client's header
// is ignored.
func FuzzRealIPHeader(f *testing.F) {
	s, err := New(Config{RealIPHeader: "X-Forwarded-For"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range []string{"203.0.113.7", "10.0.0.1, 203.0.113.7", " ::ffff:1.2.3.4 ", "2001:db8::1%eth0", "a,,", "", "1.2.3.4:80"} {
		f.Add(h, true)
	}
	proxy, client := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("198.51.100.1")
	f.Fuzz(func(t *testing.T, hdr string, trusted bool) {
		from := client
		if trusted {
			from = proxy
		}
		ip, err := s.clientIPFrom(from, hdr, true)
		if err != nil {
			if !trusted {
				t.Fatalf("untrusted client's header %q: %v", hdr, err)
			}
			return
		}
		if !ip.IsValid() || ip.Is4In6() || (!trusted && ip != client) {
			t.Fatalf("header %q from %v: address %v", hdr, from, ip)
		}
	})
}
