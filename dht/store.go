package dht

import (
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

// peerStore holds announced peers per info-hash, each expiring after ttl,
// with a bound per torrent and in total so announces cannot exhaust memory.
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
	if len(sw) >= s.maxPerTorrent {
		var oldest netip.AddrPort
		var ot time.Time
		for a, t := range sw {
			if ot.IsZero() || t.Before(ot) {
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
// bounded; when the table is full, idle (refilled) entries are dropped,
// and if none are, unknown IPs are refused until some are.
type limiter struct {
	rate, burst float64
	maxIPs      int
	ips         map[netip.Addr]*ipBucket
	lastSweep   time.Time
}

type ipBucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst float64, maxIPs int) *limiter {
	return &limiter{rate: rate, burst: burst, maxIPs: maxIPs, ips: make(map[netip.Addr]*ipBucket)}
}

// allow takes one token for ip, reporting false when it has none left.
func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	ip = ip.Unmap()
	b := l.ips[ip]
	if b == nil {
		if len(l.ips) >= l.maxIPs {
			if now.Sub(l.lastSweep) < time.Second {
				return false
			}
			l.sweep(now)
			if len(l.ips) >= l.maxIPs {
				return false
			}
		}
		b = &ipBucket{tokens: l.burst, last: now}
		l.ips[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets IPs whose bucket has refilled, which behave as new ones.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for ip, b := range l.ips {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.ips, ip)
		}
	}
}
