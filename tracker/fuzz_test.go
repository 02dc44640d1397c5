package tracker

import (
	"testing"
)

func FuzzParseAnnounceResponse(f *testing.F) {
	for _, s := range []string{
		"d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e",
		"d8:intervali1800e5:peers6:iiiipp6:peers618:iiiiiiiiiiiiiiiippe",
		"d8:completei3e10:incompletei5e8:intervali60e12:min intervali30e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eeee",
		"d14:failure reason6:bannede",
		"d8:intervali60e15:warning message4:slow10:tracker id2:ide",
		"d5:peersld2:ip11:example.org4:porti1eee8:intervali1ee\n",
		"d8:intervali5e5:peers5:abcdee",
		"<html></html>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseAnnounceResponse(body)
		if err != nil {
			if r != nil {
				t.Fatal("response and error both returned")
			}
			return
		}
		if r.Interval < 0 || r.MinInterval < 0 || r.Complete < 0 || r.Incomplete < 0 {
			t.Fatalf("negative field in %+v", r)
		}
		// Every peer must be dialable and no more peers than bytes allow.
		if len(r.Peers) > len(body)/compactV4 {
			t.Fatalf("%d peers from %d bytes", len(r.Peers), len(body))
		}
		for _, p := range r.Peers {
			if !p.Addr.IsValid() || p.Addr.Port() == 0 || p.Addr.Addr().IsUnspecified() || p.Addr.Addr().Zone() != "" {
				t.Fatalf("undialable peer %v", p)
			}
		}
	})
}

func FuzzParseUDPResponse(f *testing.F) {
	for _, s := range []struct {
		pkt  string
		ipv6 bool
	}{
		{"\x00\x00\x00\x00\x01\x02\x03\x04\x11\x22\x33\x44\x55\x66\x77\x88", false},
		{"\x00\x00\x00\x01\x01\x02\x03\x04\x00\x00\x07\x08\x00\x00\x00\x02\x00\x00\x00\x03\x7f\x00\x00\x01\x1a\xe1", false},
		{"\x00\x00\x00\x01\x01\x02\x03\x04\x00\x00\x07\x08\x00\x00\x00\x02\x00\x00\x00\x03" +
			"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1", true},
		{"\x00\x00\x00\x02\x01\x02\x03\x04\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03", false},
		{"\x00\x00\x00\x03\x01\x02\x03\x04banned\x00", false},
		{"\x00\x00\x00\x09\x01\x02\x03\x04", false},
		{"\x00\x00", false},
	} {
		f.Add([]byte(s.pkt), s.ipv6)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, ipv6 bool) {
		r, err := parseUDPResponse(pkt, ipv6, discard())
		if err != nil {
			if r != nil {
				t.Fatal("response and error both returned")
			}
			return
		}
		if r.Action > actionError {
			t.Fatalf("accepted unknown action %d", r.Action)
		}
		stride := compactV4
		if ipv6 {
			stride = compactV6
		}
		if r.Action == actionAnnounce && len(r.Peers) > (len(pkt)-udpAnnounceHeaderLen)/stride {
			t.Fatalf("%d peers from %d bytes", len(r.Peers), len(pkt))
		}
		if r.Action == actionScrape && len(r.Scrape) != (len(pkt)-8)/udpScrapeEntryLen {
			t.Fatalf("%d scrape entries from %d bytes", len(r.Scrape), len(pkt))
		}
		for _, p := range r.Peers {
			if p.Addr.Port() == 0 || p.Addr.Addr().IsUnspecified() {
				t.Fatalf("undialable peer %v", p)
			}
		}
	})
}

func BenchmarkParseAnnounceResponse(b *testing.B) {
	peers := make([]byte, 200*compactV4)
	for i := range 200 {
		copy(peers[i*compactV4:], []byte{10, 0, byte(i >> 8), byte(i), 0x1a, 0xe1})
	}
	body := mustMarshal(b, map[string]any{"interval": int64(1800), "peers": string(peers)})
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseAnnounceResponse(body); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseScrapeResponse checks that any scrape body is either refused
// or decoded into counts that are never negative, one per 20-byte key.
func FuzzParseScrapeResponse(f *testing.F) {
	for _, s := range []string{
		"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei5e10:downloadedi50e10:incompletei10eeee",
		"d5:filesdee",
		"d14:failure reason7:privatee",
		"d5:filesd3:abcdeee",
		"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei-1eeee",
		"d5:filesl" + "dede" + "ee",
		"not bencode",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseScrapeResponse(body)
		if err != nil {
			if m != nil {
				t.Fatal("counts and error both returned")
			}
			return
		}
		if len(m)*20 > len(body) {
			t.Fatalf("%d torrents from %d bytes", len(m), len(body))
		}
		for ih, st := range m {
			if st.Complete < 0 || st.Incomplete < 0 || st.Downloaded < 0 {
				t.Fatalf("negative count for %x: %+v", ih, st)
			}
		}
	})
}
