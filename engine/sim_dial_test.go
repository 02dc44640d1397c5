package engine

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestSimDialBackoff: twelve addresses that refuse every dial, and a seed
// that appears a minute later. Over 90 s the leecher dials each dead
// address at most six times (it used to every half second), and it still
// dials the seed as soon as it learns of it, and completes. The dead ones,
// learned again, do not start over.
func TestSimDialBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{256 << 10}, 32<<10)
		s := newSim(t, tt, time.Hour)
		var mu sync.Mutex
		dials := make(map[netip.AddrPort]int)
		record := func(dial dialFunc) dialFunc {
			return func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
				mu.Lock()
				dials[to]++
				mu.Unlock()
				return dial(ctx, to)
			}
		}
		var dead []netip.AddrPort
		for range 12 {
			dead = append(dead, s.nextHost()) // nothing listens: refused
		}
		leech := s.node(false, Config{}, nodeOpts{wrapDial: record})
		leech.t.AddPeers(dead...)
		time.Sleep(60 * time.Second)
		seed := s.node(true, Config{}, nodeOpts{})
		leech.t.AddPeers(append(dead, seed.addr)...) // a tracker's next answer
		time.Sleep(30 * time.Second)
		mu.Lock()
		for _, a := range dead {
			if n := dials[a]; n < 2 || n > 6 {
				t.Errorf("%v dialled %d times in 90 s; want a few retries, at most 6", a, n)
			}
		}
		if dials[seed.addr] == 0 {
			t.Error("the seed that appeared was never dialled")
		}
		mu.Unlock()
		s.waitDone(leech)
		s.checkData(leech)

		// Much later every dead address has been given up: no more dials.
		time.Sleep(30 * time.Minute)
		mu.Lock()
		before := dials[dead[0]]
		mu.Unlock()
		leech.t.AddPeers(dead...)
		time.Sleep(30 * time.Minute)
		mu.Lock()
		defer mu.Unlock()
		if after := dials[dead[0]]; after != before || after > maxDialFailures {
			t.Errorf("a dead address was dialled %d times, %d after being learned again; want it given up after %d", before, after, maxDialFailures)
		}
	})
}
