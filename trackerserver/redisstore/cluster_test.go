package redisstore

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/tracker"
)

// slot is a key's Redis Cluster slot: CRC16 (XMODEM) of its hash tag.
func slot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// spreadHashes returns one info-hash per third of the slot space, which
// `redis-cli --cluster create` gives to the three masters.
func spreadHashes() [][20]byte {
	var out [][20]byte
	seen := map[int]bool{}
	for i := 0; len(out) < 3; i++ {
		ih := [20]byte{byte(i), byte(i >> 8), 0xc1}
		third := slot(hex.EncodeToString(ih[:])) * 3 / 16384
		if !seen[third] {
			seen[third] = true
			out = append(out, ih)
		}
	}
	return out
}

// TestClusterTwoInstances runs the shared scenario on a 3-master Redis
// Cluster, for swarms whose keys live on different masters; instance A
// knows the cluster from one seed URL, B from all three.
func TestClusterTwoInstances(t *testing.T) {
	nodes := testpeers.StartRedisCluster(t, 3, 0)
	c := newClock()
	a := startInstance(t, testConfig(c), "redis+cluster://"+nodes[0].Addr)
	b := startInstance(t, testConfig(c), "redis://"+nodes[0].Addr, "redis://"+nodes[1].Addr, "redis://"+nodes[2].Addr)
	hashes := spreadHashes()
	owners := map[string]bool{}
	for _, ih := range hashes {
		sharedScenario(t, a, b, ih)
		// The swarm's keys are on one master: its own slot's.
		p := swarmPrefix(ih)
		for _, n := range nodes {
			out, err := n.CLI("--no-raw", "exists", p+"l4", p+"d")
			if err == nil && strings.Contains(out, "2") {
				owners[n.Addr] = true
			}
		}
	}
	if len(owners) != 3 {
		t.Fatalf("the swarms' keys are on %d masters, want 3", len(owners))
	}
	// One scrape of swarms on different masters.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := client().Scrape(ctx, a.httpURL, hashes)
	if err != nil {
		t.Fatal(err)
	}
	for _, ih := range hashes {
		if want := (tracker.ScrapeStats{Complete: 1, Incomplete: 1, Downloaded: 1}); st[ih] != want {
			t.Fatalf("scrape of %x: %+v, want %+v", ih, st[ih], want)
		}
	}
}
