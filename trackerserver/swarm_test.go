package trackerserver

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"unsafe"
)

// modelPeer is what the reference model keeps of a peer.
type modelPeer struct {
	addr   string
	seen   uint32
	seeder bool
	key    uint32
}

// checkFamily compares a family with the model: same peers with the same
// fields, a consistent seeder count, and (when indexed) an index that finds
// every record and holds nothing else.
func checkFamily(t *testing.T, tb *swarmTable, f *famView, model map[[20]byte]modelPeer) {
	t.Helper()
	if f.len() != len(model) {
		t.Fatalf("family has %d peers, model %d", f.len(), len(model))
	}
	seeders := 0
	for i := range f.len() {
		r := f.rec(i)
		id := [20]byte(r[:idLen])
		m, ok := model[id]
		if !ok {
			t.Fatalf("record %d: peer %q is not in the model", i, id)
		}
		seen, seeder := f.meta(r)
		if string(r[idLen:idLen+f.addrLen()]) != m.addr || seen != m.seen || seeder != m.seeder || f.key(r) != m.key {
			t.Fatalf("record %d of %q: addr %x seen %d seeder %v key %d; model %+v", i, id, r[idLen:idLen+f.addrLen()], seen, seeder, f.key(r), m)
		}
		if got := f.find(tb, &id); got != i {
			t.Fatalf("find(%q) = %d, want %d", id, got, i)
		}
		if seeder {
			seeders++
		}
	}
	if int(f.f.seeders) != seeders {
		t.Fatalf("seeder count %d, records say %d", f.f.seeders, seeders)
	}
	if f.idx() != nil {
		used := 0
		for _, v := range f.idx() {
			if v != 0 {
				used++
				if int(v) > f.len() {
					t.Fatalf("index slot points at record %d of %d", v-1, f.len())
				}
			}
		}
		if used != f.len() {
			t.Fatalf("index holds %d entries for %d records", used, f.len())
		}
	} else if f.len() >= indexAt {
		t.Fatalf("%d peers and no index", f.len())
	}
	var missing [20]byte
	copy(missing[:], "never-announced-peer")
	if _, ok := model[missing]; !ok && f.find(tb, &missing) != -1 {
		t.Fatal("found a peer that never announced")
	}
}

// testFamily returns the IPv4 or IPv6 family (by stride) of a new swarm,
// with a pool of its own.
func testFamily(stride int) *famView {
	sw := &swarm{}
	pool := &chunkPool{stride: stride}
	if stride == v4Stride {
		return &famView{f: &sw.v4, sw: sw, pool: pool}
	}
	sw.ext = &swarmExt{}
	return &famView{f: &sw.ext.v6, x: &sw.ext.v6x, sw: sw, pool: pool}
}

// TestSwarmSize keeps a swarm in the allocator's 48-byte size class: ten
// thousand torrents of ten peers each spend 4.8 bytes a peer on it.
func TestSwarmSize(t *testing.T) {
	if n := unsafe.Sizeof(swarm{}); n != 48 {
		t.Fatalf("swarm is %d bytes, want 48", n)
	}
}

// TestFamilyAgainstModel drives one family with random announces, stops,
// moves and expiries through the index thresholds in both directions and
// checks it against a plain map after every step.
func TestFamilyAgainstModel(t *testing.T) {
	for _, stride := range []uint8{v4Stride, v6Stride} {
		t.Run(fmt.Sprint("stride", stride), func(t *testing.T) {
			tb := newSwarmTable(1000, 10, 1<<20)
			f := testFamily(int(stride))
			alen := int(stride) - idLen - 8
			model := make(map[[20]byte]modelPeer)
			rng := rand.New(rand.NewPCG(1, uint64(stride)))
			now := uint32(1)
			pool := 40
			for step := range 20000 {
				// Phases grow the swarm past indexAt and shrink it again.
				switch step % 5000 {
				case 0:
					pool = 8
				case 1000:
					pool = 200
				case 3000:
					pool = 30
				}
				var id [20]byte
				binary.BigEndian.PutUint32(id[16:], uint32(rng.IntN(pool)))
				addr := make([]byte, alen)
				addr[0] = byte(rng.IntN(3))
				binary.BigEndian.PutUint16(addr[alen-2:], uint16(1+rng.IntN(2)))
				key := uint32(rng.IntN(2))
				seeder := rng.IntN(3) == 0
				switch op := rng.IntN(20); {
				case op == 0:
					now += uint32(1 + rng.IntN(5))
					cutoff := now - 3
					want := 0
					for k, m := range model {
						if m.seen < cutoff {
							delete(model, k)
							want++
						}
					}
					if got := f.expire(tb, cutoff); got != want {
						t.Fatalf("step %d: expire removed %d, model %d", step, got, want)
					}
				default:
					stopped := op < 4
					old, known := model[id]
					was, err := f.update(tb, &id, addr, key, seeder, now, stopped)
					switch {
					case stopped:
						delete(model, id)
						if was != (known && old.seeder) {
							t.Fatalf("step %d: stop reported seeder %v, model %v", step, was, known && old.seeder)
						}
					case known && old.addr != string(addr) && old.key != key:
						if err != errPeerMoved {
							t.Fatalf("step %d: move with another key: %v, want errPeerMoved", step, err)
						}
					default:
						if err != nil {
							t.Fatalf("step %d: %v", step, err)
						}
						if was != (known && old.seeder) {
							t.Fatalf("step %d: update reported seeder %v, model %v", step, was, known && old.seeder)
						}
						model[id] = modelPeer{addr: string(addr), seen: now, seeder: seeder, key: key}
					}
				}
				checkFamily(t, tb, f, model)
				if tb.lim.total.Load() != int64(len(model)) {
					t.Fatalf("step %d: tracker counts %d peers, model %d", step, tb.lim.total.Load(), len(model))
				}
			}
		})
	}
}

// TestCollect checks that a reply skips the asker, expired peers and (for
// a seeder) other seeders, never repeats a peer and honours the count.
func TestCollect(t *testing.T) {
	tb := newSwarmTable(1000, 10, 1000)
	f := testFamily(v4Stride)
	for i := range 100 {
		var id [20]byte
		id[0] = byte(i)
		seen := uint32(10)
		if i%10 == 0 {
			seen = 1 // expired at cutoff 5
		}
		if _, err := f.update(tb, &id, []byte{10, 0, 0, byte(i), 0, 1}, 0, i%2 == 1, seen, false); err != nil {
			t.Fatal(err)
		}
	}
	var self [20]byte
	self[0] = 2
	for _, tc := range []struct {
		n         int
		noSeeders bool
		want      int
	}{{200, false, 89}, {200, true, 39}, {7, false, 7}, {0, false, 0}} {
		out, got := f.collect(nil, tc.n, &self, tc.noSeeders, 5)
		if got != tc.want || len(out) != got*v4Stride {
			t.Fatalf("collect(n=%d, noSeeders=%v): %d peers in %d bytes, want %d", tc.n, tc.noSeeders, got, len(out), tc.want)
		}
		seen := make(map[byte]bool)
		for off := 0; off < len(out); off += v4Stride {
			i := out[off]
			if seen[i] || i == 2 || i%10 == 0 || (tc.noSeeders && i%2 == 1) {
				t.Fatalf("collect(n=%d, noSeeders=%v) gave peer %d", tc.n, tc.noSeeders, i)
			}
			seen[i] = true
		}
	}
}

// TestConcurrentAnnounceAndSweep runs announces, stops and sweeps at once
// (for the race detector) and then checks the counters against the swarms.
func TestConcurrentAnnounceAndSweep(t *testing.T) {
	clk := newFakeClock()
	s, err := New(Config{Now: clk.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			var out peerList
			for i := range 5000 {
				var p announceParams
				p.infoHash[0] = byte(rng.IntN(4))
				binary.BigEndian.PutUint32(p.peerID[:], uint32(rng.IntN(300)))
				p.port, p.numWant, p.left = 6881, 20, int64(rng.IntN(2))
				if rng.IntN(8) == 0 {
					p.event = eventStopped
				}
				ip := netip.AddrFrom4([4]byte{10, 0, byte(w), byte(i)})
				if rng.IntN(4) == 0 {
					ip = netip.AddrFrom16([16]byte{0x20, 1, 15: byte(w)})
				}
				// A peer id seen from two addresses with different keys
				// is refused; that is part of the mix.
				if _, _, err := s.announce(&p, ip, nil, wantV4|wantV6, s.clock(), &out); err != nil && err != errPeerMoved {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			clk.Add(10 * 60e9)
			s.sweep()
		}
	}()
	wg.Wait()
	var n int64
	for i := range s.table.shards {
		for _, sw := range s.table.shards[i].swarms {
			n += int64(sw.peers())
			if sw.seeders() < 0 || sw.leechers() < 0 {
				t.Fatalf("swarm has %d seeders, %d leechers", sw.seeders(), sw.leechers())
			}
		}
	}
	if n != s.table.peers() {
		t.Fatalf("swarms hold %d peers, counter says %d", n, s.table.peers())
	}
	clk.Add(1e15)
	s.sweep()
	if s.table.peers() != 0 || s.table.torrents() != 0 {
		t.Fatalf("after everything expired: %d peers, %d torrents", s.table.peers(), s.table.torrents())
	}
}

// TestSwarmExtension checks that a swarm gets its extension only when it
// outgrows the chunk handles it holds or gains an IPv6 peer, keeps every
// peer across the change, and lets go of it once expiry has emptied it.
func TestSwarmExtension(t *testing.T) {
	tb := newSwarmTable(1000, 10, 1<<20)
	sh := &tb.shards[0]
	sw := &swarm{}
	announce := func(i int, v6 bool, now uint32) {
		t.Helper()
		var id [20]byte
		binary.BigEndian.PutUint32(id[:], uint32(i))
		addr := []byte{10, 0, 0, byte(i), 0, 1}
		if v6 {
			addr = make([]byte, v6AddrLen)
			addr[0], addr[15], addr[17] = 0x20, byte(i), 1
		}
		if _, err := tb.update(sh, sw, &id, addr, 0, false, now, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range familyInline * chunkRecs {
		announce(i, false, 1)
	}
	if sw.ext != nil || sw.peers() != familyInline*chunkRecs {
		t.Fatalf("%d IPv4 peers: extension %v, %d peers", familyInline*chunkRecs, sw.ext != nil, sw.peers())
	}
	for i := familyInline * chunkRecs; i < 40; i++ {
		announce(i, false, 2)
	}
	announce(100, true, 2)
	if sw.ext == nil || sw.peers() != 41 || sw.ext.v4x.idx == nil || len(sw.ext.v4x.more) == 0 {
		t.Fatalf("40 IPv4 peers and one IPv6 peer: %d peers, extension %+v", sw.peers(), sw.ext)
	}
	v4 := sw.v4View(sh)
	for i := range 40 {
		var id [20]byte
		binary.BigEndian.PutUint32(id[:], uint32(i))
		if v4.find(tb, &id) < 0 {
			t.Fatalf("peer %d lost", i)
		}
	}
	// Expiry at clock 2 drops the first ten; at 3, everyone.
	if n := tb.expire(sh, sw, 2); n != familyInline*chunkRecs || sw.ext == nil {
		t.Fatalf("first expiry removed %d peers, extension %v", n, sw.ext != nil)
	}
	if n := tb.expire(sh, sw, 3); n != 31 || sw.ext != nil || !sw.empty() {
		t.Fatalf("second expiry removed %d peers; extension %+v, %d peers left", n, sw.ext, sw.peers())
	}
	if sh.v4.inUse() != 0 || sh.v6.inUse() != 0 {
		t.Fatalf("chunks still in use: %d IPv4, %d IPv6", sh.v4.inUse(), sh.v6.inUse())
	}
}
