package redisstore

import (
	"context"
	"encoding/hex"
	"slices"
	"strconv"
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

// TestClusterFailover: a replica of the master holding a swarm takes over
// (`CLUSTER FAILOVER` on it) while announces to that swarm go on; at most
// a few fail, the swarm's peers survive the switch (they were replicated)
// and announces succeed afterwards.
func TestClusterFailover(t *testing.T) {
	nodes := testpeers.StartRedisCluster(t, 3, 1)
	c := newClock()
	a := startInstance(t, testConfig(c), "redis+cluster://"+nodes[0].Addr)
	ih := [20]byte{0xfa, 0x11}
	announce(t, a.httpURL, ih, "seed", 7301, 0, tracker.Started)
	// The replica of the master that holds the swarm's slot: ROLE on a
	// replica names its master's port.
	var replica *testpeers.Redis
	tag := hex.EncodeToString(ih[:])
	var master *testpeers.Redis
	for _, m := range nodes[:3] {
		if n, _ := m.CLI("cluster", "countkeysinslot", strconv.Itoa(slot(tag))); strings.TrimSpace(n) != "0" {
			master = m
		}
	}
	if master == nil {
		t.Fatal("no master holds the swarm's keys")
	}
	for _, n := range nodes[3:] {
		if role, _ := n.CLI("role"); strings.Contains(role, "\n"+strconv.Itoa(master.Port)+"\n") {
			replica = n
		}
	}
	if replica == nil {
		t.Fatal("found no replica of the swarm's master")
	}
	// Give replication a moment to copy the swarm.
	time.Sleep(300 * time.Millisecond)

	stop := make(chan struct{})
	type result struct{ ok, failed int }
	done := make(chan result)
	go func() {
		var r result
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := client().Announce(ctx, a.httpURL, tracker.AnnounceRequest{InfoHash: ih, PeerID: peerID("loop"), Port: 7302, Left: 1, NumWant: -1})
			cancel()
			if err != nil {
				r.failed++
			} else {
				r.ok++
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if out, err := replica.CLI("cluster", "failover"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("cluster failover: %v %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := replica.CLI("role")
		if strings.HasPrefix(out, "master") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not become master within 15s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // announces go on against the new master
	close(stop)
	r := <-done
	t.Logf("announces during the fail-over: %d succeeded, %d failed", r.ok, r.failed)
	if r.failed > 5 {
		t.Errorf("%d announces failed during the fail-over, want at most 5", r.failed)
	}
	got := announce(t, a.httpURL, ih, "after", 7303, 1, tracker.Started)
	if !slices.Contains(ports(got), 7301) {
		t.Fatalf("after the fail-over the seed is gone: peers %v", ports(got))
	}
}
