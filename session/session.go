// Package session runs the torrents of one process over what they share:
// the peer listener, the DHT nodes (IPv4 and IPv6), the announce schedule
// of every torrent's trackers (BEP 12, with tracker ids, warnings and
// scrape), peer discovery (trackers, DHT, PEX, x.pe, given peers), magnet
// metadata fetching, connection limits (global and per IP) and the
// session-wide rate limits.
//
// It has two levels. A Swarm is a torrent's membership of the session:
// announced to trackers and the DHT, and incoming connections routed to
// it, whether or not an engine is running for it (a daemon keeps idle
// seeds announced without running them). A Torrent is the whole job for
// one torrent: its files opened and checked, an engine running over them,
// and its Swarm; the command line and the library example use it.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sowerbt/sower/dht"
	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/tracker"
)

// DefaultBootstrap are the public DHT routers used when a session is given
// no bootstrap nodes.
var DefaultBootstrap = []string{"router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881"}

// Defaults of Config's limits.
const (
	DefaultListen             = ":6881"
	DefaultMaxConns           = 500
	DefaultMaxConnsPerTorrent = 60
	DefaultMaxConnsPerIP      = 8
	DefaultMaxHalfOpen        = 64
	// DefaultAnnounceFloor is the shortest re-announce interval honoured
	// whatever a tracker says, and the minimum gap of Reannounce when the
	// tracker gives no "min interval".
	DefaultAnnounceFloor = time.Minute
)

// Config describes a session. Zero values take the documented defaults.
type Config struct {
	// Listen is the peer listener's address, HOST:PORT, such as
	// "127.0.0.1:0" or ":6881"; "" means DefaultListen (all interfaces).
	// Port 0 picks a free port. The DHT uses the same port over UDP.
	Listen string
	// PeerID is our peer id; zero means a fresh peerwire.NewPeerID().
	PeerID [20]byte

	// NoDHT turns the DHT off.
	NoDHT bool
	// DHTBootstrap lists HOST:PORT of nodes to join the DHT through;
	// empty means DefaultBootstrap unless DHTStateFile holds known nodes.
	DHTBootstrap []string
	// DHTStateFile, if set, keeps the IPv4 node's id and routing table
	// across runs (the IPv6 node's go to the same name plus ".6").
	DHTStateFile string
	// DHTState, if set (and DHTStateFile is not), keeps them in the
	// caller's store instead, under the keys "dht4" and "dht6".
	DHTState StateStore
	// DHTRateLimit is dht.Config.RateLimit (negative disables the per-IP
	// query limit, for test networks where every node shares one IP).
	DHTRateLimit float64

	// MaxConns bounds peer connections, open or opening, over all
	// torrents; MaxConnsPerTorrent is each engine's own bound;
	// MaxConnsPerIP bounds connections to one IP address (loopback
	// addresses are exempt: local tests and clients share 127.0.0.1);
	// MaxHalfOpen bounds incoming connections still in their handshake.
	MaxConns, MaxConnsPerTorrent, MaxConnsPerIP, MaxHalfOpen int

	// UploadLimit and DownloadLimit are session-wide token buckets (see
	// engine.NewLimiter), used by torrents that have no limit of their
	// own; nil means unlimited.
	UploadLimit, DownloadLimit *rate.Limiter

	// Tracker is the tracker client; nil means a default one.
	Tracker *tracker.Client
	// AnnounceFloor is the shortest re-announce interval; default
	// DefaultAnnounceFloor (tests shorten it).
	AnnounceFloor time.Duration
	// AnnounceRetry is the first back-off after a round in which every
	// tracker failed, doubling up to 30 minutes; default 15 s.
	AnnounceRetry time.Duration

	// Encryption is the policy for peer connections (see Encryption);
	// the zero value is EncryptionPrefer. SetEncryption changes it later.
	Encryption Encryption

	// Logger receives the session's logs; nil means slog.Default().
	Logger *slog.Logger
}

// StateStore keeps small named blobs of the session's state across runs,
// such as a daemon's database.
type StateStore interface {
	LoadState(key string) ([]byte, error)
	SaveState(key string, b []byte) error
}

// keyedState is one key of a StateStore, as a dht.StateStore.
type keyedState struct {
	s   StateStore
	key string
}

func (k keyedState) Load() ([]byte, error) { return k.s.LoadState(k.key) }
func (k keyedState) Save(b []byte) error   { return k.s.SaveState(k.key, b) }

// Session holds what the torrents of one process share. Create it with
// New and end it with Close.
type Session struct {
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	port uint16
	dht  *dht.Node // IPv4 node, paired with dht6 when there is one; nil without DHT
	dht6 *dht.Node
	gate *gate
	// external counts what trackers and peers say our address is.
	external externalVotes

	ctx    context.Context // ends when Close is called
	cancel context.CancelFunc
	// trackerCtx carries tracker announces; it ends stopTimeout after ctx,
	// so one under way at Close can finish.
	trackerCtx context.Context
	wg         sync.WaitGroup // the goroutines New started
	halfOpen   chan struct{}  // a token per incoming handshake in progress

	enc atomic.Int32 // the Encryption policy

	mu      sync.Mutex // guards swarms, req2, leaving and sched
	swarms  map[[20]byte]*Swarm
	req2    map[[20]byte][20]byte // mse.Req2(info-hash) -> info-hash, of swarms
	leaving map[*Swarm]bool       // left, with "stopped" still to send
	sched   schedule
	kick    chan struct{} // wakes the announce loop
	closed  bool
}

// New opens the peer listener and, unless cfg.NoDHT, the DHT nodes on
// the same port, and starts serving them.
func New(cfg Config) (*Session, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.PeerID == ([20]byte{}) {
		cfg.PeerID = peerwire.NewPeerID()
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerTorrent <= 0 {
		cfg.MaxConnsPerTorrent = DefaultMaxConnsPerTorrent
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.MaxHalfOpen <= 0 {
		cfg.MaxHalfOpen = DefaultMaxHalfOpen
	}
	if cfg.AnnounceFloor <= 0 {
		cfg.AnnounceFloor = DefaultAnnounceFloor
	}
	if cfg.AnnounceRetry <= 0 {
		cfg.AnnounceRetry = retryMin
	}
	if cfg.Tracker == nil {
		cfg.Tracker = &tracker.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: want HOST:PORT: %w", cfg.Listen, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for peers: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	trackerCtx, cancelTrackers := context.WithCancel(context.Background())
	context.AfterFunc(ctx, func() { time.AfterFunc(stopTimeout, cancelTrackers) })
	s := &Session{
		trackerCtx: trackerCtx,
		cfg:        cfg,
		log:        cfg.Logger,
		ln:         ln,
		port:       uint16(ln.Addr().(*net.TCPAddr).Port),
		gate:       newGate(cfg.MaxConns, cfg.MaxConnsPerIP),
		ctx:        ctx,
		cancel:     cancel,
		halfOpen:   make(chan struct{}, cfg.MaxHalfOpen),
		swarms:     make(map[[20]byte]*Swarm),
		req2:       make(map[[20]byte][20]byte),
		leaving:    make(map[*Swarm]bool),
		kick:       make(chan struct{}, 1),
	}
	if err := s.SetEncryption(cfg.Encryption); err != nil {
		ln.Close()
		cancel()
		return nil, err
	}
	if !cfg.NoDHT {
		if err := s.openDHT(host); err != nil {
			// A busy UDP port costs trackerless discovery, not the
			// transfers: go on without the DHT.
			s.log.Warn("DHT disabled", "err", err)
		}
	}
	s.wg.Go(s.serve)
	s.wg.Go(s.announceLoop)
	for _, n := range []*dht.Node{s.dht, s.dht6} {
		if n == nil {
			continue
		}
		s.wg.Go(func() {
			if err := n.Run(ctx); err != nil {
				s.log.Warn("DHT node stopped", "addr", n.Addr(), "err", err)
			}
		})
	}
	return s, nil
}

// openDHT makes the IPv4 node and, when the listener is on all interfaces
// and the host has IPv6, an IPv6 node paired with it (BEP 32 keeps the
// families apart; the IPv4 node's lookups and announces cover both).
func (s *Session) openDHT(host string) error {
	bootstrap := s.cfg.DHTBootstrap
	if len(bootstrap) == 0 {
		bootstrap = DefaultBootstrap
	}
	port := strconv.Itoa(int(s.port))
	v4 := "0.0.0.0"
	if host != "" {
		v4 = host
	}
	addr, err := netip.ParseAddr(v4)
	if err == nil && addr.Is6() && !addr.Is4In6() {
		// Listening on one IPv6 address: one IPv6 node there.
		n, err := dht.New(s.dhtConfig(net.JoinHostPort(v4, port), bootstrap, "dht6"))
		if err != nil {
			return err
		}
		s.dht = n
		return nil
	}
	n, err := dht.New(s.dhtConfig(net.JoinHostPort(v4, port), bootstrap, "dht4"))
	if err != nil {
		return err
	}
	s.dht = n
	if host != "" && host != "0.0.0.0" && host != "::" {
		return nil
	}
	n6, err := dht.New(s.dhtConfig(net.JoinHostPort("::", port), bootstrap, "dht6"))
	if err != nil {
		s.log.Debug("no IPv6 DHT node", "err", err)
		return nil
	}
	if err := n.Pair(n6); err != nil {
		s.log.Debug("no IPv6 DHT node", "err", err)
		return nil
	}
	s.dht6 = n6
	return nil
}

// dhtConfig is the configuration of the node on addr; key names its saved
// state ("dht4" or "dht6").
func (s *Session) dhtConfig(addr string, bootstrap []string, key string) dht.Config {
	c := dht.Config{Addr: addr, Bootstrap: bootstrap, Logger: s.log, RateLimit: s.cfg.DHTRateLimit}
	switch {
	case s.cfg.DHTStateFile != "" && key == "dht4":
		c.StateFile = s.cfg.DHTStateFile
	case s.cfg.DHTStateFile != "":
		c.StateFile = s.cfg.DHTStateFile + ".6"
	case s.cfg.DHTState != nil:
		c.State = keyedState{s.cfg.DHTState, key}
	}
	return c
}

// Close stops accepting peers, sends "stopped" to the trackers of every
// swarm they know us in (bounded by a few seconds), stops the DHT nodes
// (saving their state) and waits for the session's goroutines. Torrents
// still running should be closed first.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Port is the port the peer listener listens on (and the DHT on UDP).
func (s *Session) Port() uint16 { return s.port }

// Addr is the peer listener's address.
func (s *Session) Addr() net.Addr { return s.ln.Addr() }

// PeerID is the session's peer id.
func (s *Session) PeerID() [20]byte { return s.cfg.PeerID }

// DHT is the session's IPv4 (or only) DHT node, nil when the DHT is off.
func (s *Session) DHT() *dht.Node { return s.dht }

// DHTEnabled reports whether the session runs a DHT node.
func (s *Session) DHTEnabled() bool { return s.dht != nil }

// EngineConfig returns the parts of an engine.Config the session decides
// for a torrent: peer id, ports, DHT hooks (none for private torrents),
// connection limits, the session-wide rate limits and the encryption
// policy (outgoing connections go through it). Callers set the torrent's
// own fields on the result.
func (s *Session) EngineConfig(private bool) engine.Config {
	c := engine.Config{
		Connect:          s.connectTCP,
		PreferEncryption: func() bool { return s.Encryption() != EncryptionOff },
		PeerID:           s.cfg.PeerID,
		Port:             s.port,
		Gate:             s.gate,
		OnYourIP: func(from netip.AddrPort, ours netip.Addr) {
			s.external.vote("peer "+from.Addr().String(), ours)
		},
		MaxPeers:      s.cfg.MaxConnsPerTorrent,
		UploadLimit:   s.cfg.UploadLimit,
		DownloadLimit: s.cfg.DownloadLimit,
		Logger:        s.log,
	}
	if s.dht != nil && !private {
		c.DHTPort = s.port
		node := s.dht
		node6 := s.dht6
		c.OnDHTNode = func(a netip.AddrPort) {
			if a.Addr().Unmap().Is4() || node6 == nil {
				node.AddNode(a)
			} else {
				node6.AddNode(a)
			}
		}
	}
	return c
}

// swarm returns the swarm of an info-hash, nil if none.
func (s *Session) swarm(ih [20]byte) *Swarm {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swarms[ih]
}
