package testpeers

import (
	"bytes"
	"testing"
	"time"
)

func TestLtDHTStateLines(t *testing.T) {
	s := &ltDHTState{lt: &ltState{portSeen: make(chan struct{})}, events: make(map[string]time.Duration)}
	for _, l := range []string{
		"port 4242",
		"event metadata 0.0125",
		"event metadata 9.5", // only the first counts
		"event first-peer x", // not a number: ignored
		"peer 127.0.0.1:5000 2d5357303130302d000102030405060708090a0b",
		"peer 127.0.0.1:5001 zz", // bad id: kept without one
		"status state=seeding done=10 total=10 peers=2 dht_nodes=3",
		"complete",
	} {
		s.line(l)
	}
	if s.lt.port != 4242 || !s.lt.complete || s.lt.stats.Peers != 2 || s.lt.stats.State != "seeding" {
		t.Fatalf("plain lines not passed on: port=%d complete=%v stats=%v", s.lt.port, s.lt.complete, s.lt.stats)
	}
	if d := s.events["metadata"]; d != 12500*time.Microsecond {
		t.Fatalf("metadata event = %v, want 12.5ms", d)
	}
	if _, ok := s.events["first-peer"]; ok {
		t.Fatal("malformed event recorded")
	}
	if len(s.seen) != 2 || s.seen[0].Addr != "127.0.0.1:5000" || !bytes.HasPrefix(s.seen[0].PeerID, []byte("-SW0100-")) || s.seen[1].PeerID != nil {
		t.Fatalf("peers seen = %+v", s.seen)
	}
}
