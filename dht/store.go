package dht

import (
	"container/list"
	crand "crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"math/rand/v2"
	"net/netip"
	"time"
)

// tokenRotate is how often the token secret changes; tokens made with the
// previous secret stay valid, so a token is accepted for 5 to 10 minutes.
const tokenRotate = 5 * time.Minute

// tokens issues and checks get_peers tokens. A token is a hash of the
// asker's IP and a secret, so only the address that asked can announce
// with it and we keep no per-asker state.
type tokens struct {
	cur, prev [16]byte
	rotated   time.Time
}

func newTokens(now time.Time) *tokens {
	t := &tokens{rotated: now}
	crand.Read(t.cur[:])
	crand.Read(t.prev[:])
	return t
}

func (t *tokens) rotate(now time.Time) {
	for now.Sub(t.rotated) >= tokenRotate {
		t.prev = t.cur
		crand.Read(t.cur[:])
		t.rotated = t.rotated.Add(tokenRotate)
		if now.Sub(t.rotated) >= 2*tokenRotate {
			// Long idle: both secrets are too old, skip ahead.
			crand.Read(t.prev[:])
			t.rotated = now
		}
	}
}

func tokenFor(secret [16]byte, ip netip.Addr) string {
	h := sha1.New()
	h.Write(secret[:])
	h.Write(ip.Unmap().AsSlice())
	return string(h.Sum(nil)[:8])
}

// issue returns the token for ip.
func (t *tokens) issue(ip netip.Addr, now time.Time) string {
	t.rotate(now)
	return tokenFor(t.cur, ip)
}

// valid reports whether tok was issued to ip within the last two periods.
func (t *tokens) valid(tok string, ip netip.Addr, now time.Time) bool {
	t.rotate(now)
	for _, s := range [][16]byte{t.cur, t.prev} {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(tokenFor(s, ip))) == 1 {
			return true
		}
	}
	return false
}

// maxPeersPerIP bounds the peers one IP address may hold in one torrent's
// swarm: a host announcing many ports would otherwise push everyone else
// out of the swarm's slots. A few are allowed for hosts behind one NAT.
const maxPeersPerIP = 4

// sharedAddr reports whether ip is exempt from the per-IP and per-subnet
// limits: on loopback and private networks many nodes and peers share an
// address or subnet legitimately (tests, a LAN), and remote hosts cannot
// prove such an address to us.
func sharedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
}

// peerStore holds announced peers per info-hash, each expiring after ttl,
// with a bound per torrent, per IP in a torrent and in total so announces
// cannot exhaust memory or crowd others out.
type peerStore struct {
	swarms        map[[20]byte]map[netip.AddrPort]time.Time
	total         int
	maxTotal      int
	maxPerTorrent int
	ttl           time.Duration
}

func newPeerStore(maxTotal, maxPerTorrent int, ttl time.Duration) *peerStore {
	return &peerStore{swarms: make(map[[20]byte]map[netip.AddrPort]time.Time), maxTotal: maxTotal, maxPerTorrent: maxPerTorrent, ttl: ttl}
}

// add stores or refreshes a peer. It reports false when the store is full.
func (s *peerStore) add(ih [20]byte, p netip.AddrPort, now time.Time) bool {
	sw := s.swarms[ih]
	if _, ok := sw[p]; ok {
		sw[p] = now
		return true
	}
	if s.total >= s.maxTotal {
		s.expire(now)
		if s.total >= s.maxTotal {
			return false
		}
	}
	if sw == nil {
		sw = make(map[netip.AddrPort]time.Time)
		s.swarms[ih] = sw
	}
	// A new port of an IP at its limit replaces that IP's oldest entry;
	// otherwise a full swarm drops its oldest peer.
	ipFull := false
	if !sharedAddr(p.Addr()) {
		n := 0
		for a := range sw {
			if a.Addr() == p.Addr() {
				n++
			}
		}
		ipFull = n >= maxPeersPerIP
	}
	if ipFull || len(sw) >= s.maxPerTorrent {
		var oldest netip.AddrPort
		var ot time.Time
		for a, t := range sw {
			if (!ipFull || a.Addr() == p.Addr()) && (ot.IsZero() || t.Before(ot)) {
				oldest, ot = a, t
			}
		}
		delete(sw, oldest)
		s.total--
	}
	sw[p] = now
	s.total++
	return true
}

// get returns up to n unexpired peers of the given family (v6 or not),
// chosen at random when there are more.
func (s *peerStore) get(ih [20]byte, v6 bool, n int, now time.Time) []netip.AddrPort {
	var out []netip.AddrPort
	seen := 0
	for a, t := range s.swarms[ih] {
		if now.Sub(t) >= s.ttl || a.Addr().Unmap().Is6() != v6 {
			continue
		}
		seen++
		if len(out) < n {
			out = append(out, a)
		} else if j := rand.IntN(seen); j < n {
			out[j] = a // reservoir sampling keeps the choice uniform
		}
	}
	return out
}

// expire drops peers older than ttl and empty swarms.
func (s *peerStore) expire(now time.Time) {
	for ih, sw := range s.swarms {
		for a, t := range sw {
			if now.Sub(t) >= s.ttl {
				delete(sw, a)
				s.total--
			}
		}
		if len(sw) == 0 {
			delete(s.swarms, ih)
		}
	}
}

// limiter is a token bucket per source IP. The number of tracked IPs is
// bounded: a new IP beyond it replaces the one heard from longest ago, so
// a flood of (possibly spoofed) sources costs the flooder's own entries
// and never locks new nodes out. A forgotten IP starts again with a full
// bucket, as an idle one would have.
type limiter struct {
	rate, burst float64
	maxIPs      int
	ips         map[netip.Addr]*list.Element // of *ipBucket
	lru         list.List                    // least recently heard first
}

type ipBucket struct {
	ip     netip.Addr
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst float64, maxIPs int) *limiter {
	return &limiter{rate: rate, burst: burst, maxIPs: maxIPs, ips: make(map[netip.Addr]*list.Element)}
}

// allow takes one token for ip, reporting false when it has none left.
func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	ip = ip.Unmap()
	var b *ipBucket
	if el := l.ips[ip]; el != nil {
		b = el.Value.(*ipBucket)
		l.lru.MoveToBack(el)
	} else {
		if len(l.ips) >= l.maxIPs {
			old := l.lru.Front()
			delete(l.ips, old.Value.(*ipBucket).ip)
			l.lru.Remove(old)
		}
		b = &ipBucket{ip: ip, tokens: l.burst, last: now}
		l.ips[ip] = l.lru.PushBack(b)
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets IPs whose bucket has refilled, which behave as new ones,
// so that an idle node holds no memory for them.
func (l *limiter) sweep(now time.Time) {
	for el := l.lru.Front(); el != nil; {
		next := el.Next()
		b := el.Value.(*ipBucket)
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.ips, b.ip)
			l.lru.Remove(el)
		}
		el = next
	}
}
