package trackerserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// SharedStore keeps swarms, download counts, private-tracker users and the
// whitelist outside the process, so that several trackers (behind any load
// balancer) answer for the same swarms: a peer announced to one is handed
// out by all. Package redisstore implements it on Redis or Valkey.
//
// Without one (Config.Store nil) the tracker keeps swarms in its own memory,
// which is the fastest store and the default. Every method must return
// within the context's deadline; an error becomes a failure reason for the
// client, never a hang.
type SharedStore interface {
	// Announce records one announce and picks peers for the reply, in one
	// round trip to the store.
	Announce(ctx context.Context, a *SharedAnnounce) (SharedReply, error)
	// Scrape fills out[i] with the counters of hashes[i] (out has the same
	// length), counting peers seen at or after cutoff (unix seconds).
	Scrape(ctx context.Context, hashes [][20]byte, cutoff int64, out []SharedScrape) error
	// UserOf returns the user name of a passkey, or "" if it is unknown.
	// It is called for every private announce, so it should be answered
	// from a cache that the store keeps current.
	UserOf(ctx context.Context, passkey string) (string, error)
	// AddTraffic adds bytes (up, down) to users' totals; unknown users are
	// skipped.
	AddTraffic(ctx context.Context, deltas map[string][2]int64) error
	// Listed reports whether an info-hash is on the shared whitelist.
	Listed(ctx context.Context, ih [20]byte) (bool, error)
	// AddListed puts info-hashes on the shared whitelist.
	AddListed(ctx context.Context, hashes [][20]byte) error
	// ReplaceFileList makes the hashes read from the whitelist file the
	// file part of the shared whitelist, keeping those added by AddListed.
	ReplaceFileList(ctx context.Context, set map[[20]byte]struct{}) error
	// ConnIDSeed returns the secret shared by every tracker on the store,
	// storing proposal first if the store has none (the first tracker's,
	// or after the store lost its data, the first to ask again): UDP
	// connection ids derived from it are valid on every instance.
	ConnIDSeed(ctx context.Context, proposal [32]byte) ([32]byte, error)
}

// SharedAnnounce is one announce as a shared store records it.
type SharedAnnounce struct {
	InfoHash [20]byte
	// Addr is the peer's address and port in compact form: 6 bytes for
	// IPv4, 18 for IPv6. It is the peer's identity in a shared store.
	Addr              []byte
	Seeder, Stopped   bool
	Completed         bool // event=completed: counted once per download
	NumWant           int
	OtherFamily       bool  // also hand out peers of the other address family
	Now, Cutoff       int64 // unix seconds: peers seen before Cutoff are gone
	TTL               int64 // seconds a swarm without announces is kept
	MaxPeersPerFamily int
	// Account asks for the bytes moved since the peer's previous announce
	// (private trackers); Started is event=started, whose totals count in
	// full. Uploaded and Downloaded are the totals the client reported.
	Account              bool
	Started              bool
	Uploaded, Downloaded int64
	// Peers receives the compact addresses picked (6 or 18 bytes each).
	Peers []string
}

// SharedReply is the outcome of an announce in a shared store.
type SharedReply struct {
	Seeders, Leechers int
	// Up and Down are the bytes to add to the user's totals (Account).
	Up, Down int64
}

// SharedScrape is one torrent's counters in a shared store; Known is false
// when the store has nothing about it.
type SharedScrape struct {
	Seeders, Leechers int
	Downloaded        uint64
	Known             bool
}

// ErrStoreFull is what a shared store returns (wrapped) when a torrent has
// Config.MaxPeersPerTorrent peers of the announcing family.
var ErrStoreFull = errSwarmFull

// errStore marks a shared store that failed or did not answer in time.
var errStore = errors.New("tracker store unavailable, try again later")

// maxUDPInflight bounds the UDP requests a tracker on a shared store
// answers at once: enough to keep the store's pipeline full, few enough
// that a store that hangs costs a bounded number of goroutines.
const maxUDPInflight = 2048

// storeTimeout bounds every call to the shared store, so that a store that
// is down or stuck turns into a failure reason well within the time
// clients wait for an answer.
const storeTimeout = time.Second

// storeCall runs fn with the store deadline and records its latency and
// failure under op.
func (s *Server) storeCall(op string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	t0 := time.Now()
	err := fn(ctx)
	cancel()
	s.m.storeSeconds.WithLabelValues(op).Observe(time.Since(t0).Seconds())
	if err != nil && !errors.Is(err, errSwarmFull) {
		s.m.storeErrors.WithLabelValues(op).Inc()
		s.storeLog(op, err)
		return fmt.Errorf("%w (%s)", errStore, op)
	}
	return err
}

// storeLog reports store failures at most once a second, since a store
// that is down fails every request.
func (s *Server) storeLog(op string, err error) {
	now := time.Now().Unix()
	if last := s.storeLogged.Load(); now > last && s.storeLogged.CompareAndSwap(last, now) {
		s.log.Error("tracker: store", "op", op, "err", err)
	}
}

// sharedAnnounce is announce on the shared store.
func (s *Server) sharedAnnounce(p *announceParams, ip netip.Addr, user *userAcct, want int, t time.Time, out *peerList) (int, int, error) {
	out.reset()
	ok, err := s.allowedShared(p.infoHash)
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, errNotListed
	}
	ip = ip.Unmap()
	now := t.Unix()
	a := SharedAnnounce{
		InfoHash:          p.infoHash,
		Seeder:            p.left == 0,
		Stopped:           p.event == eventStopped,
		Completed:         p.event == eventCompleted,
		Now:               now,
		Cutoff:            now - int64(s.ttl),
		TTL:               int64(s.ttl),
		MaxPeersPerFamily: s.cfg.MaxPeersPerTorrent,
		Account:           user != nil,
		Started:           p.event == eventStarted,
		Uploaded:          p.uploaded,
		Downloaded:        p.downloaded,
	}
	var addrBuf [v6AddrLen]byte
	own := wantV4
	if ip.Is4() {
		b := ip.As4()
		a.Addr = append(append(addrBuf[:0], b[:]...), byte(p.port>>8), byte(p.port))
	} else {
		b := ip.As16()
		a.Addr = append(append(addrBuf[:0], b[:]...), byte(p.port>>8), byte(p.port))
		own = wantV6
	}
	if want&own != 0 {
		n := p.numWant
		if n < 0 {
			n = s.cfg.NumWant
		}
		a.NumWant = min(n, s.cfg.MaxNumWant)
	}
	a.OtherFamily = want&^own != 0
	var r SharedReply
	err = s.storeCall("announce", func(ctx context.Context) error {
		var err error
		r, err = s.shared.Announce(ctx, &a)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	// Replies are built from records as the embedded store keeps them;
	// a shared store keeps no peer id, so that part stays zero (and
	// non-compact replies leave "peer id" out).
	for _, pa := range a.Peers {
		switch len(pa) {
		case v4AddrLen:
			out.v4 = append(out.v4, make([]byte, idLen)...)
			out.v4 = append(out.v4, pa...)
			out.v4 = append(out.v4, make([]byte, 8)...)
		case v6AddrLen:
			out.v6 = append(out.v6, make([]byte, idLen)...)
			out.v6 = append(out.v6, pa...)
			out.v6 = append(out.v6, make([]byte, 8)...)
		}
	}
	if user != nil {
		user.up.Add(r.Up)
		user.down.Add(r.Down)
	}
	return r.Seeders, r.Leechers, nil
}

// allowedShared is allowed for a tracker on a shared store: the local
// uploads, then the shared whitelist.
func (s *Server) allowedShared(ih [20]byte) (bool, error) {
	if !s.enforceListed {
		return true, nil
	}
	s.uploadedMu.RLock()
	_, ok := s.uploaded[ih]
	s.uploadedMu.RUnlock()
	if ok {
		return true, nil
	}
	err := s.storeCall("whitelist", func(ctx context.Context) error {
		var err error
		ok, err = s.shared.Listed(ctx, ih)
		return err
	})
	return ok, err
}

// sharedUser returns the account of a passkey on the shared store, or nil
// when the store does not know it.
func (s *Server) sharedUser(passkey []byte) (*userAcct, error) {
	var name string
	err := s.storeCall("passkey", func(ctx context.Context) error {
		var err error
		name, err = s.shared.UserOf(ctx, string(passkey))
		return err
	})
	if err != nil || name == "" {
		return nil, err
	}
	s.usersMu.RLock()
	a := s.accounts[name]
	s.usersMu.RUnlock()
	if a != nil {
		return a, nil
	}
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if a = s.accounts[name]; a == nil {
		a = &userAcct{name: name}
		s.accounts[name] = a
	}
	return a, nil
}

// sharedScrape fills st and known for hashes from the shared store.
func (s *Server) sharedScrape(hashes [][20]byte, st []scrapeStats, known []bool) error {
	out := make([]SharedScrape, len(hashes))
	cutoff := s.cfg.Now().Unix() - int64(s.ttl)
	err := s.storeCall("scrape", func(ctx context.Context) error {
		return s.shared.Scrape(ctx, hashes, cutoff, out)
	})
	if err != nil {
		return err
	}
	for i, o := range out {
		st[i] = scrapeStats{complete: o.Seeders, incomplete: o.Leechers, downloaded: o.Downloaded}
		known[i] = o.Known
	}
	s.uploadedMu.RLock()
	for i, ih := range hashes {
		if _, up := s.uploaded[ih]; up {
			known[i] = true
		}
	}
	s.uploadedMu.RUnlock()
	return nil
}

// flushShared adds the user traffic counted since the last flush to the
// shared store, keeping it for the next try if the store fails.
func (s *Server) flushShared() error {
	deltas := make(map[string][2]int64)
	s.usersMu.RLock()
	for name, a := range s.accounts {
		up, down := a.up.Swap(0), a.down.Swap(0)
		if up != 0 || down != 0 {
			deltas[name] = [2]int64{up, down}
		}
	}
	s.usersMu.RUnlock()
	if len(deltas) == 0 {
		return nil
	}
	err := s.storeCall("traffic", func(ctx context.Context) error { return s.shared.AddTraffic(ctx, deltas) })
	if err != nil {
		s.usersMu.RLock()
		for name, d := range deltas {
			if a := s.accounts[name]; a != nil {
				a.up.Add(d[0])
				a.down.Add(d[1])
			}
		}
		s.usersMu.RUnlock()
		return fmt.Errorf("save user traffic: %w", err)
	}
	return nil
}

// sharedTorrents lists the uploaded torrents with their counters from the
// shared store (zero when it fails: the index page still shows them).
func (s *Server) sharedTorrents() []TorrentStats {
	s.uploadedMu.RLock()
	out := make([]TorrentStats, 0, len(s.uploaded))
	hashes := make([][20]byte, 0, len(s.uploaded))
	for ih, t := range s.uploaded {
		out = append(out, TorrentStats{InfoHash: ih, Uploaded: &t})
		hashes = append(hashes, ih)
	}
	s.uploadedMu.RUnlock()
	if len(hashes) == 0 {
		return out
	}
	st, known := make([]scrapeStats, len(hashes)), make([]bool, len(hashes))
	if err := s.sharedScrape(hashes, st, known); err != nil {
		return out
	}
	for i := range out {
		out[i].Seeders, out[i].Leechers, out[i].Completed = st[i].complete, st[i].incomplete, st[i].downloaded
	}
	return out
}

// refreshConnIDSeed offers the current connection-id seed to the shared
// store again and adopts the store's if it differs, so that trackers agree
// again after the store lost its data.
func (s *Server) refreshConnIDSeed() {
	cur := s.ids.seed.Load()
	if cur == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	seed, err := s.shared.ConnIDSeed(ctx, *cur)
	if err != nil {
		s.storeLog("connid", err)
		return
	}
	if seed != *cur {
		s.log.Info("tracker: adopted the store's UDP connection-id secret")
		s.ids.setSeed(seed)
	}
}
