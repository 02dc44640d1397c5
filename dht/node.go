package dht

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sowerbt/sower/bencode"
)

// Defaults for the zero values of Config.
const (
	DefaultAddr               = "0.0.0.0:6881"
	DefaultQueryTimeout       = 2 * time.Second
	DefaultRateLimit          = 25 // queries per second per source IP
	DefaultRateBurst          = 100
	DefaultMaxPeers           = 10000
	DefaultMaxPeersPerTorrent = 200
	DefaultPeerTTL            = 30 * time.Minute
)

// Internal bounds: they keep the node's memory and outbound traffic
// proportional to its own activity, whatever remote nodes send.
const (
	maxPending      = 4096 // outstanding queries
	maxVerify       = 16   // concurrent pings to nodes that queried us
	maxExtraSeeds   = 64   // AddNode addresses kept for bootstrapping
	maxTrackedIPs   = 4096 // rate limiter entries
	maxValuesPerGet = 50   // peers in one get_peers reply (fits one datagram)
	// maxAmplification bounds an answer to an address not proven to be
	// the querier's, in multiples of the query's size.
	maxAmplification = 3
	maintainEvery    = time.Minute
	saveEvery        = 5 * time.Minute
	clientVersion    = "SW\x00\x01"
)

// Config configures a Node. Zero values select the defaults above.
type Config struct {
	// Addr is the UDP address to listen on, such as "0.0.0.0:6881" or
	// "[::]:6881" (the family of the socket is the family of the node).
	Addr string
	// Conn, if set, is used instead of listening on Addr: simulations pass
	// an in-memory transport here. The Node closes it when Run returns.
	Conn net.PacketConn
	// ID is the node id; zero means the saved one (StateFile, State) or
	// else a random one.
	ID [20]byte
	// Bootstrap lists HOST:PORT of nodes used to join the DHT when the
	// routing table is nearly empty.
	Bootstrap []string
	// StateFile, if set, keeps the node id and routing table across runs.
	StateFile string
	// State, if set (and StateFile is not), keeps them in the caller's
	// store instead, such as a daemon's database.
	State StateStore
	// Logger receives debug and warning logs; nil means slog.Default().
	Logger *slog.Logger
	// QueryTimeout is how long to wait for a reply.
	QueryTimeout time.Duration
	// RateLimit is the sustained number of queries per second answered
	// per source IP, with bursts of RateBurst; negative disables the limit
	// (for local test networks where every node shares one IP).
	RateLimit float64
	RateBurst int
	// MaxPeers bounds the announced peers stored for others, in total and
	// per torrent; PeerTTL is how long an announce is kept.
	MaxPeers           int
	MaxPeersPerTorrent int
	PeerTTL            time.Duration
}

// Stats are counters describing a node's state and traffic.
type Stats struct {
	Nodes           int // in the routing table
	Buckets         int
	Torrents        int // info-hashes with stored peers
	Peers           int // stored peers
	QueriesSent     uint64
	Responses       uint64 // replies to our queries
	Timeouts        uint64 // our queries that got no reply
	QueriesReceived uint64 // queries answered or refused with an error
	RateLimited     uint64 // queries dropped by the per-IP limit
	Malformed       uint64 // datagrams that failed to parse
	Unsolicited     uint64 // replies matching no query of ours
	ErrorsSent      uint64
}

// Node is a DHT node: it answers other nodes' queries and runs lookups for
// its owner. Create it with New, start it with Run.
type Node struct {
	cfg  Config
	log  *slog.Logger
	conn net.PacketConn
	id   [20]byte
	addr netip.AddrPort
	v6   bool
	now  func() time.Time // replaced in tests to age tokens

	mu            sync.Mutex
	table         *table
	peers         *peerStore
	tokens        *tokens
	limit         *limiter
	pending       map[string]*pending
	tid           uint32
	verifying     int
	extraSeeds    []netip.AddrPort
	runCtx        context.Context
	running       chan struct{} // closed once Run has started
	stopped       bool
	wg            sync.WaitGroup // lookups started by the owner
	lastBootstrap time.Time
	lastSave      time.Time
	partner       *Node // the other family's node, see Pair
	paired        bool  // n is some node's partner

	c counters
}

type counters struct {
	sent, responses, timeouts, received, limited, malformed, unsolicited, errorsSent atomic.Uint64
}

// pending is one query of ours awaiting a reply.
type pending struct {
	to    contact
	hasID bool // to.id is known, so a timeout counts against that node
	timer *time.Timer
	done  func(*msg, error) // called once, must not block
}

var (
	errTimeout = errors.New("query timed out")
	errStopped = errors.New("dht node is not running")
)

// New creates a node and binds its socket (or adopts cfg.Conn). A
// StateFile that cannot be parsed is logged and ignored, so a damaged file
// never stops the node from starting.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = DefaultRateBurst
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.MaxPeersPerTorrent <= 0 {
		cfg.MaxPeersPerTorrent = DefaultMaxPeersPerTorrent
	}
	if cfg.PeerTTL <= 0 {
		cfg.PeerTTL = DefaultPeerTTL
	}
	n := &Node{cfg: cfg, log: cfg.Logger, now: time.Now, pending: make(map[string]*pending), running: make(chan struct{})}
	if cfg.StateFile != "" {
		cfg.State = fileState(cfg.StateFile)
		n.cfg.State = cfg.State
	}
	var st *state
	if cfg.State != nil {
		var err error
		st, err = loadState(cfg.State)
		if err != nil {
			n.log.Warn("dht: ignoring saved state", "err", err)
			st = nil
		}
	}
	switch {
	case cfg.ID != [20]byte{}:
		n.id = cfg.ID
	case st != nil:
		n.id = st.id
	default:
		crand.Read(n.id[:])
	}
	conn := cfg.Conn
	if conn == nil {
		addr := cfg.Addr
		if addr == "" {
			addr = DefaultAddr
		}
		network := "udp"
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			network = "udp4"
			if ap.Addr().Is6() && !ap.Addr().Is4In6() {
				network = "udp6"
			}
		}
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return nil, fmt.Errorf("dht: listen on %s: %w", addr, err)
		}
		conn = c
	}
	n.conn = conn
	local, err := addrPortOf(conn.LocalAddr())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dht: local address: %w", err)
	}
	n.addr = local
	n.v6 = local.Addr().Is6() && !local.Addr().Is4In6()
	now := n.now()
	n.table = newTable(n.id, n.v6, now)
	n.peers = newPeerStore(cfg.MaxPeers, cfg.MaxPeersPerTorrent, cfg.PeerTTL)
	n.tokens = newTokens(now)
	n.lastSave = now
	n.limit = newLimiter(cfg.RateLimit, float64(cfg.RateBurst), maxTrackedIPs)
	if st != nil {
		for _, c := range st.nodes {
			if n.table.accepts(c) && len(n.extraSeeds) < maxExtraSeeds {
				n.extraSeeds = append(n.extraSeeds, c.addr)
			}
		}
	}
	return n, nil
}

// addrPortOf converts a net.Addr from the transport into a netip.AddrPort
// with IPv4-mapped addresses unmapped.
func addrPortOf(a net.Addr) (netip.AddrPort, error) {
	var ap netip.AddrPort
	switch v := a.(type) {
	case *net.UDPAddr:
		ap = v.AddrPort()
	default:
		p, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("address %q: %w", a.String(), err)
		}
		ap = p
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// ID returns the node id.
func (n *Node) ID() [20]byte { return n.id }

// Addr returns the local UDP address, e.g. to advertise in a `port`
// message.
func (n *Node) Addr() netip.AddrPort { return n.addr }

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	s := Stats{Nodes: n.table.size, Buckets: len(n.table.buckets), Torrents: len(n.peers.swarms), Peers: n.peers.total}
	n.mu.Unlock()
	s.QueriesSent = n.c.sent.Load()
	s.Responses = n.c.responses.Load()
	s.Timeouts = n.c.timeouts.Load()
	s.QueriesReceived = n.c.received.Load()
	s.RateLimited = n.c.limited.Load()
	s.Malformed = n.c.malformed.Load()
	s.Unsolicited = n.c.unsolicited.Load()
	s.ErrorsSent = n.c.errorsSent.Load()
	return s
}

// AddNode makes addr a candidate for the routing table, for instance the
// address from a peer's `port` message or a torrent's `nodes` key. The
// node is pinged and enters the table only if it answers.
func (n *Node) AddNode(addr netip.AddrPort) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.IsValid() || addr.Port() == 0 {
		return
	}
	if addr.Addr().Is6() != n.v6 {
		if p := n.getPartner(); p != nil {
			p.AddNode(addr)
		}
		return
	}
	n.mu.Lock()
	if len(n.extraSeeds) >= maxExtraSeeds {
		copy(n.extraSeeds, n.extraSeeds[1:])
		n.extraSeeds = n.extraSeeds[:maxExtraSeeds-1]
	}
	n.extraSeeds = append(n.extraSeeds, addr)
	running := n.runCtx != nil && !n.stopped
	n.mu.Unlock()
	if running {
		_, _ = n.send(contact{addr: addr}, false, "ping", &args{}, func(*msg, error) {})
	}
}

// Pair makes other, a node of the other address family run by the same
// client, n's partner: BEP 32 keeps an IPv4 and an IPv6 DHT apart, one
// routing table each, but a client wants peers from both, and its callers
// (such as the engine) hold one node. GetPeers and Announce on n then run
// on both nodes, and AddNode passes addresses of other's family to it.
// other still works on its own. A node has at most one partner and cannot
// be partnered both ways.
func (n *Node) Pair(other *Node) error {
	if other == nil || other == n || other.v6 == n.v6 {
		return errors.New("dht: pair: the partner must be a node of the other address family")
	}
	// Lock in a fixed order (IPv4 first) so two Pair calls cannot
	// deadlock.
	first, second := n, other
	if n.v6 {
		first, second = other, n
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	second.mu.Lock()
	defer second.mu.Unlock()
	if n.partner != nil || n.paired || other.partner != nil || other.paired {
		return errors.New("dht: pair: a node already has a partner")
	}
	n.partner, other.paired = other, true
	return nil
}

func (n *Node) getPartner() *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.partner
}

// Run serves the socket and maintains the routing table (bootstrap,
// bucket refresh, liveness pings, expiry) until ctx is cancelled. It then
// waits for the node's lookups to end, closes the socket, saves the state
// file and returns nil. A Node runs once.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.runCtx != nil || n.stopped {
		n.mu.Unlock()
		return errors.New("dht: Run called more than once")
	}
	runCtx, cancel := context.WithCancel(ctx)
	n.runCtx = runCtx
	n.mu.Unlock()
	close(n.running)

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		n.readLoop(runCtx)
	}()
	n.maintain(runCtx)

	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	cancel()
	n.wg.Wait()
	n.conn.Close()
	<-readDone
	n.failAllPending()
	if n.cfg.State != nil {
		if err := n.saveState(); err != nil {
			n.log.Warn("dht: saving state", "err", err)
		}
	}
	return nil
}

// begin registers an owner operation (lookup, announce) with the running
// node, returning a context cancelled when either ctx or the node ends.
// Called before Run has started, it waits for Run (or ctx).
func (n *Node) begin(ctx context.Context) (context.Context, func(), error) {
	select {
	case <-n.running:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("dht: waiting for Run: %w", ctx.Err())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.runCtx == nil || n.stopped {
		return nil, nil, errStopped
	}
	n.wg.Add(1)
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.runCtx, cancel)
	return cctx, func() {
		stop()
		cancel()
		n.wg.Done()
	}, nil
}

func (n *Node) readLoop(ctx context.Context) {
	buf := make([]byte, maxPacket)
	for {
		nb, from, err := n.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Debug("dht: read", "err", err)
			continue
		}
		src, err := addrPortOf(from)
		if err != nil {
			continue
		}
		if nb >= len(buf) {
			n.c.malformed.Add(1)
			n.log.Debug("dht: dropping oversized datagram", "from", src)
			continue
		}
		n.handlePacket(buf[:nb], src)
	}
}

func (n *Node) handlePacket(b []byte, from netip.AddrPort) {
	now := n.now()
	m, err := decodeMsg(b)
	if err != nil {
		n.c.malformed.Add(1)
		n.log.Debug("dht: bad message", "from", from, "err", err)
		if m != nil && m.Y == "q" && m.T != "" && len(m.T) <= maxTIDLen && n.allow(from, now) {
			n.sendError(from, m.T, maxAmplification*len(b), ErrCodeProtocol, truncate(err.Error(), 200))
		}
		return
	}
	switch m.Y {
	case "q":
		if !n.allow(from, now) {
			n.c.limited.Add(1)
			return
		}
		n.handleQuery(m, from, now, len(b))
	default:
		n.handleReply(m, from, now)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (n *Node) allow(from netip.AddrPort, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.limit.allow(from.Addr(), now)
}

func (n *Node) handleReply(m *msg, from netip.AddrPort, now time.Time) {
	n.mu.Lock()
	p := n.pending[m.T]
	if p == nil || p.to.addr != from {
		n.mu.Unlock()
		n.c.unsolicited.Add(1)
		return
	}
	delete(n.pending, m.T)
	p.timer.Stop()
	var check *entry
	if m.Y == "r" {
		id := [20]byte([]byte(m.R.ID))
		if id == n.id {
			n.mu.Unlock()
			p.done(nil, errors.New("reply claims our own node id"))
			return
		}
		if m.RO == 0 {
			check = n.table.seen(contact{id: id, addr: from}, true, now)
		}
	}
	n.mu.Unlock()
	n.c.responses.Add(1)
	if check != nil {
		_, _ = n.send(check.contact, true, "ping", &args{}, func(*msg, error) {})
	}
	if m.Y == "e" {
		p.done(nil, m.E)
		return
	}
	p.done(m, nil)
}

// handleQuery answers a query of reqLen bytes.
func (n *Node) handleQuery(m *msg, from netip.AddrPort, now time.Time, reqLen int) {
	n.c.received.Add(1)
	qid := [20]byte([]byte(m.A.ID))
	// A node in the table at this address answered our queries there, so
	// the address is its own; to any other, the answer is bounded by the
	// query's size, as the source of a datagram may be forged.
	n.mu.Lock()
	e := n.table.get(qid)
	proven := e != nil && e.addr == from
	n.mu.Unlock()
	limit := maxAmplification * reqLen
	if proven {
		limit = 0
	}
	if qid == n.id {
		n.sendError(from, m.T, limit, ErrCodeProtocol, "query claims the receiver's node id")
		return
	}
	r := &reply{ID: string(n.id[:])}
	a := m.A
	switch m.Q {
	case "ping":
	case "find_node":
		if a.Target == "" {
			n.sendError(from, m.T, limit, ErrCodeProtocol, "find_node without a.target")
			return
		}
		n.fillNodes(r, [20]byte([]byte(a.Target)), a.Want, from, now)
	case "get_peers":
		if a.InfoHash == "" {
			n.sendError(from, m.T, limit, ErrCodeProtocol, "get_peers without a.info_hash")
			return
		}
		ih := [20]byte([]byte(a.InfoHash))
		n.mu.Lock()
		r.Token = n.tokens.issue(from.Addr(), now)
		vals := n.peers.get(ih, from.Addr().Is6(), maxValuesPerGet, now)
		n.mu.Unlock()
		for _, p := range vals {
			r.Values = append(r.Values, string(appendCompactAddr(nil, p)))
		}
		n.fillNodes(r, ih, a.Want, from, now)
	case "announce_peer":
		if a.InfoHash == "" {
			n.sendError(from, m.T, limit, ErrCodeProtocol, "announce_peer without a.info_hash")
			return
		}
		port := uint16(a.Port)
		if a.ImpliedPort == 1 {
			port = from.Port()
		}
		if port == 0 {
			n.sendError(from, m.T, limit, ErrCodeProtocol, "announce_peer without a.port or implied_port")
			return
		}
		n.mu.Lock()
		ok := n.tokens.valid(a.Token, from.Addr(), now)
		stored := ok && n.peers.add([20]byte([]byte(a.InfoHash)), netip.AddrPortFrom(from.Addr(), port), now)
		n.mu.Unlock()
		if !ok {
			n.sendError(from, m.T, limit, ErrCodeProtocol, "announce_peer with a bad or expired token")
			return
		}
		if !stored {
			n.sendError(from, m.T, limit, ErrCodeServer, "peer store is full")
			return
		}
	default:
		n.sendError(from, m.T, limit, ErrCodeMethod, "method unknown")
		return
	}
	n.sendMsg(from, &msg{T: m.T, Y: "r", R: r, IP: string(appendCompactAddr(nil, from)), V: clientVersion}, limit)
	if m.RO != 0 {
		return
	}
	// A node that queries us refreshes its entry; an unknown one is
	// pinged first, since the source address of a query proves nothing.
	c := contact{id: qid, addr: from}
	n.mu.Lock()
	verify := false
	if n.table.get(qid) != nil {
		n.table.seen(c, false, now)
	} else if n.verifying < maxVerify && n.table.wouldInsert(c, now) {
		n.verifying++
		verify = true
	}
	n.mu.Unlock()
	if verify {
		_, err := n.send(c, true, "ping", &args{}, func(*msg, error) {
			n.mu.Lock()
			n.verifying--
			n.mu.Unlock()
		})
		if err != nil {
			n.mu.Lock()
			n.verifying--
			n.mu.Unlock()
		}
	}
}

// fillNodes adds the K closest nodes to target to a find_node or get_peers
// reply, in the families the requester wants (BEP 32) that we have.
func (n *Node) fillNodes(r *reply, target [20]byte, want []string, from netip.AddrPort, now time.Time) {
	wantV4, wantV6 := from.Addr().Is4(), from.Addr().Is6()
	if len(want) > 0 {
		wantV4, wantV6 = false, false
		for _, w := range want {
			wantV4 = wantV4 || w == "n4"
			wantV6 = wantV6 || w == "n6"
		}
	}
	if (n.v6 && !wantV6) || (!n.v6 && !wantV4) {
		return
	}
	n.mu.Lock()
	cs := n.table.closest(target, K, now)
	n.mu.Unlock()
	b := appendCompactNodes(nil, cs, n.v6)
	if n.v6 {
		r.Nodes6 = string(b)
	} else {
		r.Nodes = string(b)
	}
}

// sendError answers a query with an error of at most limit bytes (0: any).
// trimAnswer shortens m by about excess bytes, reporting false when
// nothing is left to take out.
func trimAnswer(m *msg, excess int) bool {
	if r := m.R; r != nil {
		// Peers are what a get_peers asks for: nodes go first.
		switch {
		case len(r.Nodes6) > 0:
			k := min(len(r.Nodes6)/38, max(1, excess/38))
			r.Nodes6 = r.Nodes6[:len(r.Nodes6)-38*k]
			return true
		case len(r.Nodes) > 0:
			k := min(len(r.Nodes)/26, max(1, excess/26))
			r.Nodes = r.Nodes[:len(r.Nodes)-26*k]
			return true
		case len(r.Values) > 0:
			k := min(len(r.Values), max(1, excess/(len(r.Values[0])+2)))
			r.Values = r.Values[:len(r.Values)-k]
			return true
		}
	}
	if e := m.E; e != nil && len(e.Msg) > 0 {
		e.Msg = e.Msg[:max(0, len(e.Msg)-excess)]
		return true
	}
	return false
}

func (n *Node) sendError(to netip.AddrPort, tid string, limit, code int, text string) {
	n.c.errorsSent.Add(1)
	n.sendMsg(to, &msg{T: tid, Y: "e", E: &Error{Code: code, Msg: text}, V: clientVersion}, limit)
}

// sendMsg sends an answer of at most limit bytes (0: any size), trimmed
// to fit: the farthest nodes first, then peer values, then an error's
// text. An answer that still does not fit is not sent.
func (n *Node) sendMsg(to netip.AddrPort, m *msg, limit int) {
	b, err := bencode.Marshal(m)
	for err == nil && limit > 0 && len(b) > limit {
		if !trimAnswer(m, len(b)-limit) {
			return
		}
		b, err = bencode.Marshal(m)
	}
	if err != nil {
		n.log.Warn("dht: encoding message", "err", err)
		return
	}
	if _, err := n.conn.WriteTo(b, net.UDPAddrFromAddrPort(to)); err != nil {
		n.log.Debug("dht: send", "to", to, "err", err)
	}
}

// send writes a query to c and arranges for done to be called exactly
// once, with the reply, a KRPC *Error, or errTimeout. done runs on the
// reading goroutine or a timer and must not block.
func (n *Node) send(c contact, hasID bool, method string, a *args, done func(*msg, error)) (cancel func(), err error) {
	n.mu.Lock()
	if len(n.pending) >= maxPending {
		n.mu.Unlock()
		return nil, fmt.Errorf("dht: %d queries outstanding", maxPending)
	}
	n.tid++
	t := string(binary.BigEndian.AppendUint32(nil, n.tid))
	p := &pending{to: c, hasID: hasID, done: done}
	n.pending[t] = p
	p.timer = time.AfterFunc(n.cfg.QueryTimeout, func() { n.expire(t, p) })
	n.mu.Unlock()
	a.ID = string(n.id[:])
	var b []byte
	b, err = bencode.Marshal(&msg{T: t, Y: "q", Q: method, A: a, V: clientVersion})
	if err == nil {
		_, err = n.conn.WriteTo(b, net.UDPAddrFromAddrPort(c.addr))
	}
	if err != nil {
		n.mu.Lock()
		owned := n.pending[t] == p
		if owned {
			delete(n.pending, t)
			p.timer.Stop()
		}
		n.mu.Unlock()
		if owned {
			return nil, fmt.Errorf("dht: %s to %s: %w", method, c.addr, err)
		}
		return func() {}, nil // the timer already reported it
	}
	n.c.sent.Add(1)
	return func() { n.forget(t, p) }, nil
}

// expire ends a query that got no reply and counts it against the node.
func (n *Node) expire(t string, p *pending) {
	n.mu.Lock()
	if n.pending[t] != p {
		n.mu.Unlock()
		return
	}
	delete(n.pending, t)
	if p.hasID {
		n.table.failed(p.to, n.now())
	}
	n.mu.Unlock()
	n.c.timeouts.Add(1)
	p.done(nil, errTimeout)
}

// forget drops a query whose asker stopped waiting.
func (n *Node) forget(t string, p *pending) {
	n.mu.Lock()
	if n.pending[t] == p {
		delete(n.pending, t)
		p.timer.Stop()
	}
	n.mu.Unlock()
}

func (n *Node) failAllPending() {
	n.mu.Lock()
	ps := n.pending
	n.pending = make(map[string]*pending)
	n.mu.Unlock()
	for _, p := range ps {
		if p.timer.Stop() {
			p.done(nil, errStopped)
		}
	}
}

// query sends a query and waits for its outcome or ctx.
func (n *Node) query(ctx context.Context, c contact, hasID bool, method string, a *args) (*msg, error) {
	type result struct {
		m   *msg
		err error
	}
	ch := make(chan result, 1)
	cancel, err := n.send(c, hasID, method, a, func(m *msg, err error) { ch <- result{m, err} })
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.m, r.err
	case <-ctx.Done():
		// Nobody waits any more: drop the query so its timer does not
		// count a failure against the node.
		cancel()
		return nil, ctx.Err()
	}
}
