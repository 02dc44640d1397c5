package trackerserver

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a running tracker. Create it with New, serve with Serve, and
// Close it after Serve returns to release the database.
type Server struct {
	cfg   Config
	log   *slog.Logger
	table *swarmTable
	store *Store // nil without a data directory
	start time.Time
	ttl   uint32 // peer lifetime in clock seconds
	m     *metrics
	ids   *connIDs
	conns *connLimit // HTTP connections open
	admin string     // operator token for uploads; empty disables them

	// whitelist is the set read from the whitelist file; uploaded holds
	// the info-hashes of uploaded torrents, always allowed.
	whitelist     atomic.Pointer[map[[20]byte]struct{}]
	whitelistMod  time.Time
	uploadedMu    sync.RWMutex
	uploaded      map[[20]byte]TorrentInfo
	enforceListed bool

	usersMu  sync.RWMutex
	passkeys map[string]*userAcct // passkey -> account
	// accounts are the users seen on a shared store, by name, with the
	// traffic not yet added to it.
	accounts map[string]*userAcct

	// shared is the store of swarms shared with other trackers; nil keeps
	// them in table.
	shared      SharedStore
	storeLogged atomic.Int64 // unix second of the last store error logged
	// udpSem bounds the UDP requests answered concurrently on a shared
	// store; udpInflight counts them so that Serve waits for them.
	udpSem      chan struct{}
	udpInflight sync.WaitGroup
	pktPool     sync.Pool // *[]byte copies of datagrams in flight

	sessMu   sync.Mutex
	sessions map[sessionKey]session

	pool sync.Pool // *scratch
}

// userAcct is a private tracker user's traffic not yet written to the
// database.
type userAcct struct {
	name     string
	up, down atomic.Int64
}

// sessionKey names one peer's announce session of one torrent, whose last
// reported byte counts turn the next announce's totals into increments.
type sessionKey struct{ infoHash, peerID [20]byte }

type session struct {
	user     *userAcct
	up, down int64
	seen     uint32
}

// New prepares a tracker from cfg, opening its database if cfg.DataDir is
// set. logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("tracker config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		table:    newSwarmTable(cfg.MaxPeersPerTorrent, cfg.MaxTorrents, cfg.MaxPeers),
		start:    cfg.Now(),
		uploaded: make(map[[20]byte]TorrentInfo),
		passkeys: make(map[string]*userAcct),
		accounts: make(map[string]*userAcct),
		sessions: make(map[sessionKey]session),
		shared:   cfg.Store,
		udpSem:   make(chan struct{}, maxUDPInflight),
	}
	s.pktPool.New = func() any { b := make([]byte, 0, 256); return &b }
	ttl := float64(time.Duration(cfg.Interval)/time.Second) * cfg.ExpireFactor
	s.ttl = uint32(min(ttl, 1<<30))
	s.conns = newConnLimit(cfg.MaxConns)
	s.enforceListed = cfg.Mode == ModeWhitelist || cfg.WhitelistFile != "" ||
		cfg.Mode == ModePrivate && !cfg.AllowUnregistered
	var err error
	if s.shared != nil {
		// Every instance on the store derives its connection ids from
		// one secret, so a client may connect to one and announce to
		// another.
		var proposal [32]byte
		if _, err := rand.Read(proposal[:]); err != nil {
			return nil, fmt.Errorf("connection id secret: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*storeTimeout)
		seed, err := s.shared.ConnIDSeed(ctx, proposal)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("tracker store: connection id secret: %w", err)
		}
		s.ids = newSharedConnIDs(seed)
	} else if s.ids, err = newConnIDs(); err != nil {
		return nil, err
	}
	s.m = newMetrics(s)
	if cfg.WhitelistFile != "" {
		if _, err := s.reloadWhitelist(); err != nil {
			return nil, err
		}
	}
	if cfg.DataDir != "" {
		if s.store, err = OpenStore(cfg.DataDir); err != nil {
			return nil, err
		}
		if err := s.loadFromStore(); err != nil {
			s.store.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) loadFromStore() error {
	ts, err := s.store.Torrents()
	if err != nil {
		return fmt.Errorf("load uploaded torrents: %w", err)
	}
	for _, t := range ts {
		ih, err := hex.DecodeString(t.InfoHash)
		if err != nil || len(ih) != 20 {
			return fmt.Errorf("uploaded torrent %q: bad info-hash in database", t.InfoHash)
		}
		s.uploaded[[20]byte(ih)] = t
	}
	if s.admin, err = s.store.AdminToken(); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if s.shared != nil {
		// Passkeys live in the shared store; uploads stay local (the
		// .torrent files) but join the shared whitelist.
		if len(s.uploaded) == 0 {
			return nil
		}
		hashes := make([][20]byte, 0, len(s.uploaded))
		for ih := range s.uploaded {
			hashes = append(hashes, ih)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*storeTimeout)
		defer cancel()
		if err := s.shared.AddListed(ctx, hashes); err != nil {
			return fmt.Errorf("tracker store: whitelist uploaded torrents: %w", err)
		}
		return nil
	}
	return s.reloadPasskeys()
}

// reloadPasskeys replaces the in-memory passkey table with the database's,
// keeping unflushed traffic of users that remain.
func (s *Server) reloadPasskeys() error {
	pks, err := s.store.passkeys()
	if err != nil {
		return fmt.Errorf("load passkeys: %w", err)
	}
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	byName := make(map[string]*userAcct)
	for _, a := range s.passkeys {
		byName[a.name] = a
	}
	next := make(map[string]*userAcct, len(pks))
	for pk, name := range pks {
		a := byName[name]
		if a == nil {
			a = &userAcct{name: name}
			byName[name] = a
		}
		next[pk] = a
	}
	s.passkeys = next
	return nil
}

// Store returns the tracker's database, nil when it has none. Passkey
// changes made through it take effect after ReloadPasskeys.
func (s *Server) Store() *Store { return s.store }

// ReloadPasskeys makes passkey changes made through Store effective.
func (s *Server) ReloadPasskeys() error {
	if s.store == nil {
		return errors.New("tracker has no database")
	}
	return s.reloadPasskeys()
}

// AdminToken is the secret that authorises uploads on the index page (as
// the password of HTTP basic authentication, any user name); empty when the
// tracker has no database to store uploads in.
func (s *Server) AdminToken() string { return s.admin }

// clock is the server's time in whole seconds since it started, plus one
// so that zero can mean "never".
func (s *Server) clock() uint32 { return s.clockAt(s.cfg.Now()) }

// clockAt is clock for a time already read: reading the clock costs a
// tenth of a UDP announce's processing on some virtual machines.
func (s *Server) clockAt(t time.Time) uint32 {
	return uint32(t.Sub(s.start)/time.Second) + 1
}

// cutoff is the clock value before which peers have expired.
func (s *Server) cutoff(now uint32) uint32 {
	if now <= s.ttl {
		return 0
	}
	return now - s.ttl
}

// reloadWhitelist reads the whitelist file if it changed and reports
// whether it did.
func (s *Server) reloadWhitelist() (bool, error) {
	fi, err := os.Stat(s.cfg.WhitelistFile)
	if err != nil {
		return false, fmt.Errorf("whitelist: %w", err)
	}
	if fi.ModTime().Equal(s.whitelistMod) && s.whitelist.Load() != nil {
		return false, nil
	}
	f, err := os.Open(s.cfg.WhitelistFile)
	if err != nil {
		return false, fmt.Errorf("whitelist: %w", err)
	}
	defer f.Close()
	set, err := parseWhitelist(bufio.NewScanner(f), s.cfg.WhitelistFile)
	if err != nil {
		return false, err
	}
	if s.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*storeTimeout)
		err := s.shared.ReplaceFileList(ctx, set)
		cancel()
		if err != nil {
			return false, fmt.Errorf("whitelist %s: copy to the tracker store: %w", s.cfg.WhitelistFile, err)
		}
	}
	s.whitelist.Store(&set)
	s.whitelistMod = fi.ModTime()
	return true, nil
}

// parseWhitelist reads info-hashes, 40 hex digits per line; blank lines
// and text after '#' are ignored.
func parseWhitelist(sc *bufio.Scanner, name string) (map[[20]byte]struct{}, error) {
	set := make(map[[20]byte]struct{})
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if i := strings.IndexByte(t, '#'); i >= 0 {
			t = t[:i]
		}
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		b, err := hex.DecodeString(t)
		if err != nil || len(b) != 20 {
			return nil, fmt.Errorf("whitelist %s line %d: %q is not a 40-digit hex info-hash", name, line, truncate([]byte(t)))
		}
		set[[20]byte(b)] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("whitelist %s: %w", name, err)
	}
	return set, nil
}

// allowed reports whether the torrent may be tracked.
func (s *Server) allowed(ih [20]byte) bool {
	if !s.enforceListed {
		return true
	}
	if wl := s.whitelist.Load(); wl != nil {
		if _, ok := (*wl)[ih]; ok {
			return true
		}
	}
	s.uploadedMu.RLock()
	_, ok := s.uploaded[ih]
	s.uploadedMu.RUnlock()
	return ok
}

// user returns the account of a passkey, or nil.
func (s *Server) user(passkey []byte) (*userAcct, error) {
	if s.shared != nil {
		return s.sharedUser(passkey)
	}
	return s.localUser(passkey), nil
}

// localUser returns the account of a passkey from the database, or nil.
func (s *Server) localUser(passkey []byte) *userAcct {
	s.usersMu.RLock()
	defer s.usersMu.RUnlock()
	return s.passkeys[string(passkey)]
}

// Errors of access control, turned into failure reasons.
var (
	errNotListed      = errors.New("torrent is not tracked here (not on the whitelist or registered)")
	errPrivateScrape  = errors.New("this is a private tracker: scrape over HTTP at /<passkey>/scrape")
	errUnknownPasskey = errors.New("unknown passkey")
	errNeedPasskey    = errors.New("this is a private tracker: announce to /<passkey>/announce")
)

// Families of peers a response may carry.
const (
	wantV4 = 1 << iota
	wantV6
)

// announce records an announce from ip at clock time now and puts the
// peers to give in out. It returns the swarm's seeder and leecher counts.
func (s *Server) announce(p *announceParams, ip netip.Addr, user *userAcct, want int, now uint32, out *peerList) (int, int, error) {
	if s.shared != nil {
		return s.sharedAnnounce(p, ip, user, want, s.start.Add(time.Duration(now-1)*time.Second), out)
	}
	out.reset()
	if !s.allowed(p.infoHash) {
		return 0, 0, errNotListed
	}
	cutoff := s.cutoff(now)
	ip = ip.Unmap()
	stopped := p.event == eventStopped
	seeder := p.left == 0
	var addrBuf [v6AddrLen]byte
	var addr []byte
	if ip.Is4() {
		a := ip.As4()
		addr = append(append(addrBuf[:0], a[:]...), byte(p.port>>8), byte(p.port))
	} else {
		a := ip.As16()
		addr = append(append(addrBuf[:0], a[:]...), byte(p.port>>8), byte(p.port))
	}
	sh := s.table.shard(p.infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw, err := s.table.getOrCreate(sh, p.infoHash, s.loadCompleted)
	if err != nil {
		return 0, 0, err
	}
	wasSeeder, err := s.table.update(sh, sw, &p.peerID, addr, p.key, seeder, now, stopped)
	if err != nil {
		return 0, 0, err
	}
	if p.event == eventCompleted && !wasSeeder {
		sw.completed++
		sh.markDirty(p.infoHash)
	}
	sw.lastActive = now
	if user != nil {
		s.account(p, user, now)
	}
	if !stopped {
		n := p.numWant
		if n < 0 {
			n = s.cfg.NumWant
		}
		n = min(n, s.cfg.MaxNumWant)
		// Views are taken after the update, which may have attached an
		// extension to the swarm.
		v4 := sw.v4View(sh)
		v6, hasV6 := sw.v6View(sh, false)
		var got int
		if ip.Is4() {
			if want&wantV4 != 0 {
				out.v4, got = v4.collect(out.v4, n, &p.peerID, seeder, cutoff)
				n -= got
			}
			if want&wantV6 != 0 && hasV6 {
				out.v6, _ = v6.collect(out.v6, n, &p.peerID, seeder, cutoff)
			}
		} else {
			if want&wantV6 != 0 && hasV6 {
				out.v6, got = v6.collect(out.v6, n, &p.peerID, seeder, cutoff)
				n -= got
			}
			if want&wantV4 != 0 {
				out.v4, _ = v4.collect(out.v4, n, &p.peerID, seeder, cutoff)
			}
		}
	}
	return sw.seeders(), sw.leechers(), nil
}

// loadCompleted is the download count a swarm starts with.
func (s *Server) loadCompleted(ih [20]byte) uint64 {
	if s.store == nil {
		return 0
	}
	return s.store.completed(ih)
}

// account adds the bytes moved since the peer's previous announce to its
// user. The first announce of a session counts in full only with
// "started" (whose totals are zero in practice): after a tracker restart
// the earlier part of a session cannot be told from what was already
// counted, so it is not counted again.
func (s *Server) account(p *announceParams, u *userAcct, now uint32) {
	k := sessionKey{p.infoHash, p.peerID}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	prev, ok := s.sessions[k]
	if !ok && p.event != eventStarted {
		prev = session{up: p.uploaded, down: p.downloaded}
	}
	if prev.user != nil && prev.user != u {
		prev = session{up: p.uploaded, down: p.downloaded} // passkey changed mid-session
	}
	du, dd := p.uploaded-prev.up, p.downloaded-prev.down
	if du < 0 { // the client restarted its counters
		du = p.uploaded
	}
	if dd < 0 {
		dd = p.downloaded
	}
	u.up.Add(du)
	u.down.Add(dd)
	if p.event == eventStopped {
		delete(s.sessions, k)
		return
	}
	s.sessions[k] = session{user: u, up: p.uploaded, down: p.downloaded, seen: now}
}

// scrapeStats is a torrent's counters (BEP 48).
type scrapeStats struct {
	complete, incomplete int
	downloaded           uint64
}

// scrape returns the counters of ih and whether the tracker knows it.
func (s *Server) scrape(ih [20]byte) (scrapeStats, bool) {
	sh := s.table.shard(ih)
	sh.mu.Lock()
	if sw := sh.swarms[ih]; sw != nil {
		st := scrapeStats{sw.seeders(), sw.leechers(), sw.completed}
		sh.mu.Unlock()
		return st, true
	}
	sh.mu.Unlock()
	n := s.loadCompleted(ih)
	s.uploadedMu.RLock()
	_, up := s.uploaded[ih]
	s.uploadedMu.RUnlock()
	return scrapeStats{downloaded: n}, n > 0 || up
}

// scrapeMany returns the counters of hashes that may be tracked, with
// known[i] false for those the tracker does not know or may not track.
func (s *Server) scrapeMany(hashes [][20]byte) (stats []scrapeStats, known []bool, err error) {
	stats, known = make([]scrapeStats, len(hashes)), make([]bool, len(hashes))
	if s.shared != nil {
		if err := s.sharedScrape(hashes, stats, known); err != nil {
			return nil, nil, err
		}
		for i, ih := range hashes {
			if known[i] && s.enforceListed {
				ok, err := s.allowedShared(ih)
				if err != nil {
					return nil, nil, err
				}
				if !ok {
					stats[i], known[i] = scrapeStats{}, false
				}
			}
		}
		return stats, known, nil
	}
	for i, ih := range hashes {
		if s.allowed(ih) {
			stats[i], known[i] = s.scrape(ih)
		}
	}
	return stats, known, nil
}

// TorrentStats is the state of one torrent, as the index page shows it.
type TorrentStats struct {
	InfoHash          [20]byte
	Seeders, Leechers int
	Completed         uint64
	LastActive        time.Time // zero if never announced since start
	Uploaded          *TorrentInfo
}

// Torrents returns every torrent in memory or uploaded. On a shared store
// only uploaded torrents are listed: listing every swarm would scan the
// store.
func (s *Server) Torrents() []TorrentStats {
	if s.shared != nil {
		return s.sharedTorrents()
	}
	var out []TorrentStats
	seen := make(map[[20]byte]int)
	for i := range s.table.shards {
		sh := &s.table.shards[i]
		sh.mu.Lock()
		for ih, sw := range sh.swarms {
			st := TorrentStats{InfoHash: ih, Seeders: sw.seeders(), Leechers: sw.leechers(), Completed: sw.completed}
			if sw.lastActive > 0 {
				st.LastActive = s.start.Add(time.Duration(sw.lastActive-1) * time.Second)
			}
			seen[ih] = len(out)
			out = append(out, st)
		}
		sh.mu.Unlock()
	}
	s.uploadedMu.RLock()
	for ih, t := range s.uploaded {
		t := t
		if i, ok := seen[ih]; ok {
			out[i].Uploaded = &t
			continue
		}
		out = append(out, TorrentStats{InfoHash: ih, Completed: s.loadCompleted(ih), Uploaded: &t})
	}
	s.uploadedMu.RUnlock()
	return out
}

// sweep expires silent peers and forgets empty swarms whose counts are
// safe: stored in the database, or zero when there is none.
func (s *Server) sweep() (peers int) {
	cutoff := s.cutoff(s.clock())
	for i := range s.table.shards {
		sh := &s.table.shards[i]
		sh.mu.Lock()
		for ih, sw := range sh.swarms {
			peers += s.table.expire(sh, sw, cutoff)
			if _, dirty := sh.dirty[ih]; !dirty && sw.empty() && sw.lastActive < cutoff {
				delete(sh.swarms, ih)
				s.table.lim.torrents.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
	s.sessMu.Lock()
	for k, v := range s.sessions {
		if v.seen < cutoff {
			delete(s.sessions, k)
		}
	}
	s.sessMu.Unlock()
	return peers
}

// flush writes changed download counts and user traffic to the database.
func (s *Server) flush() error {
	if s.shared != nil {
		return s.flushShared()
	}
	if s.store == nil {
		return nil
	}
	counts := make(map[[20]byte]uint64)
	for i := range s.table.shards {
		sh := &s.table.shards[i]
		sh.mu.Lock()
		for ih := range sh.dirty {
			if sw := sh.swarms[ih]; sw != nil {
				counts[ih] = sw.completed
			}
		}
		sh.mu.Unlock()
	}
	if len(counts) > 0 {
		if err := s.store.saveCompleted(counts); err != nil {
			return fmt.Errorf("save download counts: %w", err)
		}
		for ih, n := range counts {
			sh := s.table.shard(ih)
			sh.mu.Lock()
			// A download completed since the snapshot keeps it dirty.
			if sw := sh.swarms[ih]; sw == nil || sw.completed == n {
				delete(sh.dirty, ih)
			}
			sh.mu.Unlock()
		}
	}
	deltas := make(map[string][2]int64)
	s.usersMu.RLock()
	for _, a := range s.passkeys {
		up, down := a.up.Swap(0), a.down.Swap(0)
		if up != 0 || down != 0 {
			d := deltas[a.name]
			deltas[a.name] = [2]int64{d[0] + up, d[1] + down}
		}
	}
	s.usersMu.RUnlock()
	if len(deltas) > 0 {
		if err := s.store.addUserBytes(deltas); err != nil {
			return fmt.Errorf("save user traffic: %w", err)
		}
	}
	return nil
}

// Serve answers HTTP requests on each of httpLns and UDP packets on each of
// udpConns until ctx ends, then shuts down gracefully: in-flight HTTP
// requests are given a few seconds to finish and counters are flushed.
// It returns the first serving error, or nil after a clean shutdown. It
// closes the listeners; the caller still calls Close.
func (s *Server) Serve(ctx context.Context, httpLns []net.Listener, udpConns []net.PacketConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: time.Duration(s.cfg.HeaderTimeout), // slowloris
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeadLen,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState:         s.trackConnState,
	}
	errc := make(chan error, 2*len(httpLns)+len(udpConns)+1)
	var wg sync.WaitGroup
	fronts := make([]*httpFront, len(httpLns))
	for i, ln := range httpLns {
		f := &httpFront{s: s, ln: ln, handOff: newHandOffListener(ln.Addr()), conns: make(map[net.Conn]struct{})}
		fronts[i] = f
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := hs.Serve(f.handOff); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http tracker on %s: %w", ln.Addr(), err)
				cancel()
			}
		}()
		go func() {
			defer wg.Done()
			if err := f.serve(); err != nil {
				errc <- fmt.Errorf("http tracker on %s: %w", ln.Addr(), err)
				cancel()
			}
		}()
	}
	for _, pc := range udpConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveUDP(ctx, pc); err != nil {
				errc <- fmt.Errorf("udp tracker on %s: %w", pc.LocalAddr(), err)
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.maintain(ctx)
	}()
	<-ctx.Done()
	for _, f := range fronts {
		f.shutdown()
	}
	shCtx, shCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shCancel()
	if err := hs.Shutdown(shCtx); err != nil {
		s.log.Warn("tracker: HTTP shutdown", "err", err)
		hs.Close()
	}
	for _, pc := range udpConns {
		pc.Close()
	}
	wg.Wait()
	s.udpInflight.Wait()
	close(errc)
	ferr := s.flush()
	if err := <-errc; err != nil {
		return err
	}
	return ferr
}

// maintain runs the periodic work until ctx ends.
func (s *Server) maintain(ctx context.Context) {
	sweepEvery := min(max(time.Duration(s.ttl)*time.Second/8, time.Second), time.Minute)
	sweepT := time.NewTicker(sweepEvery)
	defer sweepT.Stop()
	flushT := time.NewTicker(time.Duration(s.cfg.FlushInterval))
	defer flushT.Stop()
	listT := time.NewTicker(5 * time.Second)
	defer listT.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweepT.C:
			if n := s.sweep(); n > 0 {
				s.log.Debug("tracker: expired peers", "count", n)
			}
		case <-flushT.C:
			if err := s.flush(); err != nil {
				s.log.Error("tracker: flush", "err", err)
				s.m.errors.WithLabelValues("database").Inc()
			}
		case <-listT.C:
			if s.shared != nil {
				s.refreshConnIDSeed()
			}
			if s.cfg.WhitelistFile != "" {
				if changed, err := s.reloadWhitelist(); err != nil {
					s.log.Error("tracker: whitelist reload", "err", err)
				} else if changed {
					s.log.Info("tracker: whitelist reloaded")
				}
			}
		}
	}
}

// Close flushes counters and closes the database. A shared store is the
// caller's to close.
func (s *Server) Close() error {
	if s.store == nil {
		if s.shared != nil {
			return s.flush()
		}
		return nil
	}
	err := s.flush()
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
}
