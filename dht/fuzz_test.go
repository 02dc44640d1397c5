package dht

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/dht/internal/memnet"
)

// fuzzSeeds are valid and invalid KRPC messages of every kind.
func fuzzSeeds() []string {
	id := strings.Repeat("\x01", 20)
	return []string{
		"d1:ad2:id20:" + id + "e1:q4:ping1:t2:aa1:y1:qe",
		"d1:ad2:id20:" + id + "6:target20:" + id + "e1:q9:find_node1:t2:aa1:y1:qe",
		"d1:ad2:id20:" + id + "9:info_hash20:" + id + "4:wantl2:n42:n6ee1:q9:get_peers1:t2:aa1:y1:qe",
		"d1:ad2:id20:" + id + "12:implied_porti1e9:info_hash20:" + id + "4:porti6881e5:token8:abcdefghe1:q13:announce_peer1:t2:aa1:y1:qe",
		"d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:" + id + "5:nodes26:" + id + "\x7f\x00\x00\x01\x1a\xe15:token2:tk6:valuesl6:\x7f\x00\x00\x01\x1a\xe1ee1:t2:aa1:y1:re",
		"d1:rd2:id20:" + id + "6:nodes638:" + id + strings.Repeat("\x00", 15) + "\x01\x1a\xe1e1:t2:aa1:y1:re",
		"d1:eli201e11:A Generic Ee1:t2:aa1:y1:ee",
		"d1:rd2:id20:" + id + "5:nodes25:" + strings.Repeat("n", 25) + "e1:t2:aa1:y1:re",
		"d1:ali1ee1:q4:ping1:t2:aa1:y1:qe",
		"d1:eli201ee1:t2:aa1:y1:ee",
		"de",
		"i5e",
	}
}

func FuzzDecodeMsg(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMsg(b)
		if err != nil {
			return
		}
		if m.R != nil {
			if _, err := parseCompactNodes(m.R.Nodes, false); err != nil {
				t.Fatalf("validated nodes do not parse: %v", err)
			}
			if _, err := parseCompactNodes(m.R.Nodes6, true); err != nil {
				t.Fatalf("validated nodes6 do not parse: %v", err)
			}
			for _, v := range m.R.Values {
				if _, err := parseCompactAddr([]byte(v)); err != nil {
					t.Fatalf("validated value does not parse: %v", err)
				}
			}
		}
		enc, err := bencode.Marshal(m)
		if err != nil {
			t.Fatalf("re-encoding a valid message: %v", err)
		}
		m2, err := decodeMsg(enc)
		if err != nil {
			t.Fatalf("re-encoded message %q does not decode: %v", enc, err)
		}
		if m2.T != m.T || m2.Y != m.Y || m2.Q != m.Q {
			t.Fatalf("round trip changed the header: %+v vs %+v", m, m2)
		}
	})
}

// FuzzHandlePacket feeds datagrams to a node's dispatcher: whatever
// arrives, it must answer or drop without panicking.
func FuzzHandlePacket(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	mn := memnet.New()
	n, err := New(Config{Conn: mn.Listen(), RateLimit: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	defer n.conn.Close()
	from := netip.MustParseAddrPort("10.9.9.9:6881")
	f.Fuzz(func(t *testing.T, b []byte) {
		n.handlePacket(b, from)
		n.failAllPending()
	})
}
