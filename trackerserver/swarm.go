package trackerserver

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ipAddr is the stored form of a peer address: IPv4 and IPv6 peers live in
// separate maps so that an IPv4 peer does not pay for 16 address bytes.
type ipAddr interface{ [4]byte | [16]byte }

// peerEntry is one peer of a swarm, the value of a map keyed by peer id:
// 16 bytes for IPv4, 28 for IPv6.
type peerEntry[A ipAddr] struct {
	ip     A
	port   uint16
	seeder bool
	// seen is the time of the last announce, in seconds of the server's
	// clock (see Server.clock).
	seen uint32
	// key is the BEP 7 key, which lets a peer move to another address.
	key uint32
}

// family is the peers of one address family in a swarm.
type family[A ipAddr] struct {
	peers   map[[20]byte]peerEntry[A]
	seeders int
}

func (f *family[A]) len() int { return len(f.peers) }

// Errors of an update, turned into failure reasons.
var (
	errSwarmFull   = errors.New("torrent has the maximum number of peers")
	errTrackerFull = errors.New("tracker has the maximum number of peers")
	errTooMany     = errors.New("tracker has the maximum number of torrents")
	errPeerMoved   = errors.New("peer id already announced from another address with a different key")
)

// update records an announce in the family, or removes the peer for
// "stopped". It reports whether the peer was known as a seeder before, so
// that a "completed" event is counted once per download. A peer that
// changes address keeps its slot only if it proves its identity with the
// same BEP 7 key.
func (f *family[A]) update(id [20]byte, e peerEntry[A], stopped bool, lim *limits) (wasSeeder bool, err error) {
	old, ok := f.peers[id]
	if stopped {
		if ok {
			delete(f.peers, id)
			lim.total.Add(-1)
			if old.seeder {
				f.seeders--
			}
		}
		return old.seeder, nil
	}
	if ok {
		if (old.ip != e.ip || old.port != e.port) && old.key != e.key {
			return false, errPeerMoved
		}
		if old.seeder {
			f.seeders--
		}
	} else {
		if len(f.peers) >= lim.perTorrent {
			return false, errSwarmFull
		}
		if lim.total.Add(1) > int64(lim.maxTotal) {
			lim.total.Add(-1)
			return false, errTrackerFull
		}
		if f.peers == nil {
			f.peers = make(map[[20]byte]peerEntry[A])
		}
	}
	f.peers[id] = e
	if e.seeder {
		f.seeders++
	}
	return old.seeder, nil
}

// expire drops peers last seen before cutoff and returns how many.
func (f *family[A]) expire(cutoff uint32, lim *limits) int {
	n := 0
	for id, e := range f.peers {
		if e.seen < cutoff {
			delete(f.peers, id)
			if e.seeder {
				f.seeders--
			}
			n++
		}
	}
	lim.total.Add(-int64(n))
	if len(f.peers) == 0 {
		f.peers = nil // let the map's buckets go
	}
	return n
}

// collect appends to out up to n peers other than self that were seen at or
// after cutoff, skipping seeders when noSeeders. Go's map iteration starts at
// a random place, which spreads the peers handed out over the swarm.
func (f *family[A]) collect(out []peerOut, n int, self [20]byte, noSeeders bool, cutoff uint32) []peerOut {
	for id, e := range f.peers {
		if n <= 0 {
			break
		}
		if id == self || (noSeeders && e.seeder) || e.seen < cutoff {
			continue
		}
		p := peerOut{id: id, port: e.port}
		switch ip := any(e.ip).(type) {
		case [4]byte:
			copy(p.ip[:], ip[:])
			p.v4 = true
		case [16]byte:
			p.ip = ip
		}
		out = append(out, p)
		n--
	}
	return out
}

// peerOut is a peer on its way into a response.
type peerOut struct {
	id   [20]byte
	ip   [16]byte // first 4 bytes when v4
	v4   bool
	port uint16
}

// swarm is everything known about one torrent.
type swarm struct {
	v4 family[[4]byte]
	v6 family[[16]byte]
	// completed counts downloads ever (the "downloaded" of a scrape);
	// stored counts what the database holds, so flushing writes only
	// changed swarms.
	completed, stored uint64
	// lastActive is the server-clock time of the last announce.
	lastActive uint32
}

func (s *swarm) seeders() int  { return s.v4.seeders + s.v6.seeders }
func (s *swarm) leechers() int { return s.v4.len() + s.v6.len() - s.seeders() }
func (s *swarm) empty() bool   { return s.v4.len() == 0 && s.v6.len() == 0 }

// limits are the caps shared by all swarms.
type limits struct {
	perTorrent, maxTorrents, maxTotal int
	total                             atomic.Int64 // peers in all swarms
	torrents                          atomic.Int64
}

// shardCount spreads torrents over independently locked maps so announces
// for different torrents rarely contend.
const shardCount = 256

type shard struct {
	mu     sync.Mutex
	swarms map[[20]byte]*swarm
}

// swarmTable holds every swarm, sharded by the first byte of the
// info-hash (uniformly distributed, being SHA-1 output).
type swarmTable struct {
	shards [shardCount]shard
	lim    limits
}

func newSwarmTable(perTorrent, maxTorrents, maxTotal int) *swarmTable {
	t := &swarmTable{}
	t.lim.perTorrent, t.lim.maxTorrents, t.lim.maxTotal = perTorrent, maxTorrents, maxTotal
	for i := range t.shards {
		t.shards[i].swarms = make(map[[20]byte]*swarm)
	}
	return t
}

func (t *swarmTable) shard(ih [20]byte) *shard { return &t.shards[ih[0]] }

// getOrCreate returns the swarm of ih from a locked shard, creating it
// (with completed set by load) if there is room. load runs with the shard
// lock held; it must be quick.
func (t *swarmTable) getOrCreate(sh *shard, ih [20]byte, load func([20]byte) uint64) (*swarm, error) {
	if sw := sh.swarms[ih]; sw != nil {
		return sw, nil
	}
	if t.lim.torrents.Add(1) > int64(t.lim.maxTorrents) {
		t.lim.torrents.Add(-1)
		return nil, errTooMany
	}
	sw := &swarm{}
	if load != nil {
		sw.completed = load(ih)
		sw.stored = sw.completed
	}
	sh.swarms[ih] = sw
	return sw, nil
}

// peers returns the number of peers tracked.
func (t *swarmTable) peers() int64 { return t.lim.total.Load() }

// torrents returns the number of swarms in memory.
func (t *swarmTable) torrents() int64 { return t.lim.torrents.Load() }
