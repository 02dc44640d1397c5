package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
	"golang.org/x/time/rate"
)

// Config tunes one torrent. Zero values take the documented defaults.
type Config struct {
	PeerID [20]byte // our peer id; default a fresh peerwire.NewPeerID()
	Port   uint16   // the listening port we tell peers; 0 if not listening

	// Have is the set of verified pieces found on disk (storage.Recheck);
	// default none.
	Have bitfield.Bitfield
	// WantedFiles selects files to download (selective download); nil means all.
	WantedFiles []bool
	// FilePriorities, when set, gives each file a priority (Skip, Normal,
	// High) and overrides WantedFiles: high-priority pieces are fetched
	// before normal ones.
	FilePriorities []Priority
	// Sequential fetches pieces in order instead of rarest first, for
	// streaming; it costs the swarm diversity, so it is opt-in.
	Sequential bool
	// EndGame is the rule for entering end game; default EndGameAllRequested.
	EndGame EndGamePolicy
	// WebSeeds (BEP 19 url-list) and HTTPSeeds (BEP 17) are HTTP sources
	// used alongside peers.
	WebSeeds, HTTPSeeds []string
	// InfoBytes is the raw info dictionary, served to peers that fetch the
	// metadata from a magnet link (BEP 9); nil means we do not serve it.
	InfoBytes []byte
	// DHTPort, if not 0, is our DHT node's UDP port: the handshake says we
	// run a node and peers get a port message (BEP 5). OnDHTNode, if set,
	// is told the nodes peers announce with theirs. Both are ignored for
	// private torrents (BEP 27).
	DHTPort   uint16
	OnDHTNode func(netip.AddrPort)
	// Gate, if set, admits every connection against limits shared with
	// other torrents (the session's global and per-IP limits).
	Gate ConnGate
	// OnYourIP, if set, is told the address a peer says it sees us at
	// (BEP 10 "yourip"), for the session's external address vote. It runs
	// on the owner goroutine and must not block.
	OnYourIP func(from netip.AddrPort, ours netip.Addr)
	// SuperSeed enables BEP 16 super-seeding while we are a seed.
	SuperSeed bool
	// UploadLimit and DownloadLimit cap the payload plus protocol bytes of
	// this torrent's connections (see NewLimiter); nil means unlimited.
	// Share one limiter among torrents for a global limit.
	UploadLimit, DownloadLimit *rate.Limiter

	MaxPeers    int           // connected peers at most; default 60
	MaxDialing  int           // concurrent outgoing dials; default 10
	DialTimeout time.Duration // default 5 s
	// Dial opens a connection to a peer, within DialTimeout (its context
	// ends then); the engine then runs the BitTorrent handshake on it.
	// Default: TCP. Tests pass an in-memory network; any net.Conn works
	// (a *net.TCPConn gets raw socket I/O, see internal/rawsock).
	Dial func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	// Connect, if set, opens outgoing connections in place of Dial: it
	// connects to addr and sends hs, our BitTorrent handshake, so that
	// what the returned connection yields next is the peer's handshake.
	// The session sets it to apply its encryption policy: hs then travels
	// inside the encryption handshake (MSE's initial payload) at no extra
	// round trip. It returns within DialTimeout (ctx ends then).
	Connect func(ctx context.Context, addr netip.AddrPort, hs []byte, hint PeerHint) (net.Conn, error)
	// PreferEncryption, if set, says whether we prefer encrypted
	// connections, as the extension handshake's "e" tells peers; asked
	// at each new connection, so a policy change applies to new ones.
	PreferEncryption func() bool
	PeerTimeout      time.Duration // a peer silent this long is dropped; default 2 min
	KeepAlive        time.Duration // idle time before we send a keep-alive; default 90 s
	MaxUnchoked      int           // upload slots, one of them optimistic; default 4
	// RechokeInterval is the choking round; the optimistic unchoke rotates
	// every third round. Default 10 s (BEP 3); tests shorten it.
	RechokeInterval time.Duration
	// MaxBuffer bounds memory for in-flight and hashing pieces; default
	// 48 MiB: a full request pipeline (maxDepth blocks, 32 MiB) and the
	// pieces waiting for their hash check, keeping a leecher's peak RSS
	// under 100 MB; a larger budget made no download faster.
	MaxBuffer   int64
	HashWorkers int // parallel piece verifications; default GOMAXPROCS
	// SyncOnStop makes Run wait, before it returns, until the storage has
	// made the written data durable (Storage.Sync, an fsync). Without it
	// Run returns once every verified piece is written to the storage,
	// which for files means in the page cache, as cp or other BitTorrent
	// clients leave it: nothing verified is lost if the process dies, and
	// after a machine crash the start-up re-check finds what did not reach
	// the disk. The wait is bounded by the disk, not the network.
	SyncOnStop bool

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.PeerID == ([20]byte{}) {
		c.PeerID = peerwire.NewPeerID()
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = 60
	}
	if c.MaxDialing <= 0 {
		c.MaxDialing = 10
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.Dial == nil {
		c.Dial = func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr.String())
		}
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = 2 * time.Minute
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 90 * time.Second
	}
	if c.RechokeInterval <= 0 {
		c.RechokeInterval = rechokeEvery
	}
	if c.MaxUnchoked <= 0 {
		c.MaxUnchoked = 4
	}
	if c.MaxBuffer <= 0 {
		c.MaxBuffer = 48 << 20
	}
	if c.HashWorkers <= 0 {
		c.HashWorkers = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Torrent downloads and seeds one torrent. All swarm state is owned by the
// goroutine running Run; other goroutines talk to it through channels, and
// Stats reads a snapshot the owner publishes.
type Torrent struct {
	cfg      Config
	info     *metainfo.Info
	infoHash [20]byte
	layout   *storage.Layout
	store    storage.Storage
	log      *slog.Logger

	events   chan event
	conns    chan *handshaked
	addPeers chan []netip.AddrPort
	hashed   chan hashResult
	stopped  chan struct{} // closed when Run returns
	done     chan struct{} // closed when every wanted piece is verified
	doneOnce sync.Once
	blocks   *blockPool // received blocks' buffers, shared with the picker
	batches  sync.Pool  // *msgBatch, from readers to the owner and back
	uploaded atomic.Int64
	hashSem  chan struct{}
	workers  sync.WaitGroup // piece verifications in flight
	// protocolCloses counts connections we closed on purpose; tests read it.
	protocolCloses atomic.Int64

	statsMu   sync.Mutex
	stats     Stats
	statsReq  chan struct{} // Stats asks the owner for a fresh snapshot
	statsDone chan struct{} // the owner published it
	running   atomic.Bool
	loopDone  chan struct{}  // closed when the owner stops serving requests
	calls     chan func()    // work to run on the owner goroutine (control.go)
	wsReqs    chan wsRequest // web seed workers ask for work (webseed.go)
	wsResults chan wsResult
	lastHave  bitfield.Bitfield // the have set when the owner last published, under statsMu

	// Owner state.
	pk                          *picker
	rng                         *rand.Rand // the choker's random choices
	peers                       map[*peer]struct{}
	serving                     map[int]*peer // seed: who each piece is being sent to (dedup.go)
	dupRefusals                 int64         // requests refused as duplicates
	fresh                       bool          // some piece is neither sent nor held by a leecher (dedup.go)
	freshAt                     time.Time     // when fresh was computed
	byAddr                      map[netip.AddrPort]*peer
	known                       map[netip.AddrPort]*candidate
	banned                      map[netip.AddrPort]bool // see banKey
	dialing                     int
	reqScratch                  []outItem // fillRequests' batch, reused
	downloaded                  int64
	wasted                      int64
	hashFails                   int
	down, up                    rateMeter
	complete                    bool
	lastRechoke, lastOptimistic time.Time
	failed                      map[int]*failedPiece // mixed-source pieces that failed, by index
	webSeeds                    []*wsSource
	webDownloaded               int64       // payload bytes from web seeds
	failure                     *WriteError // stops Run (verify.go)
}

// New prepares a torrent for Run. store must hold the torrent's byte space
// laid out by layout; cfg.Have says which pieces are already verified there.
func New(info *metainfo.Info, infoHash [20]byte, layout *storage.Layout, store storage.Storage, cfg Config) (*Torrent, error) {
	cfg.setDefaults()
	n := info.NumPieces()
	if layout.NumPieces() != n {
		return nil, fmt.Errorf("engine: layout has %d pieces, torrent %d", layout.NumPieces(), n)
	}
	have := cfg.Have
	if have.Len() == 0 {
		have = bitfield.New(n)
	} else if have.Len() != n {
		return nil, fmt.Errorf("engine: have bitfield covers %d pieces, torrent %d", have.Len(), n)
	} else {
		have = have.Clone()
	}
	prio, err := piecePriorities(layout, cfg.WantedFiles, cfg.FilePriorities)
	if err != nil {
		return nil, err
	}
	pool := new(blockPool)
	t := &Torrent{
		cfg:       cfg,
		info:      info,
		infoHash:  infoHash,
		layout:    layout,
		store:     store,
		log:       cfg.Logger.With("torrent", info.Name),
		events:    make(chan event, 256),
		conns:     make(chan *handshaked, 16),
		addPeers:  make(chan []netip.AddrPort, 16),
		hashed:    make(chan hashResult, 16),
		stopped:   make(chan struct{}),
		statsReq:  make(chan struct{}),
		statsDone: make(chan struct{}),
		loopDone:  make(chan struct{}),
		calls:     make(chan func()),
		wsReqs:    make(chan wsRequest),
		wsResults: make(chan wsResult),
		done:      make(chan struct{}),
		hashSem:   make(chan struct{}, cfg.HashWorkers),
		pk: newPicker(pickerConfig{
			pieceLen: info.PieceLength, totalLen: info.TotalLength(),
			have: have, prio: prio, sequential: cfg.Sequential, endGame: cfg.EndGame,
			maxActive: int(cfg.MaxBuffer / info.PieceLength), pool: pool,
		}),
		blocks: pool,
		rng:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		peers:  make(map[*peer]struct{}),
		byAddr: make(map[netip.AddrPort]*peer),
		known:  make(map[netip.AddrPort]*candidate),
		banned: make(map[netip.AddrPort]bool),
		failed: make(map[int]*failedPiece),
	}
	t.publishStats(time.Now())
	return t, nil
}

// piecePriorities gives each piece the highest priority of the
// non-padding files it touches; pieces touching only skipped files get
// Skip. FilePriorities wins over WantedFiles when both are set.
func piecePriorities(l *storage.Layout, wantedFiles []bool, filePrio []Priority) ([]Priority, error) {
	files := l.Files()
	if wantedFiles != nil && len(wantedFiles) != len(files) {
		return nil, fmt.Errorf("engine: %d wanted flags for %d files", len(wantedFiles), len(files))
	}
	if filePrio != nil && len(filePrio) != len(files) {
		return nil, fmt.Errorf("engine: %d file priorities for %d files", len(filePrio), len(files))
	}
	prio := make([]Priority, l.NumPieces())
	if len(prio) == 0 {
		return prio, nil
	}
	for i, f := range files {
		fp := Normal
		switch {
		case filePrio != nil:
			fp = filePrio[i]
		case wantedFiles != nil && !wantedFiles[i]:
			fp = Skip
		}
		if f.Padding || f.Length == 0 || fp == Skip {
			continue
		}
		off := l.FileOffset(i)
		first := int(off / l.PieceLength())
		last := int((off + f.Length - 1) / l.PieceLength())
		for p := first; p <= last; p++ {
			prio[p] = max(prio[p], fp)
		}
	}
	return prio, nil
}

// InfoHash identifies the torrent.
func (t *Torrent) InfoHash() [20]byte { return t.infoHash }

// Done is closed once every wanted piece is verified and written.
func (t *Torrent) Done() <-chan struct{} { return t.done }

// AddPeers offers addresses to dial (from the command line, PEX, DHT...).
// It never blocks for long: if the owner is busy the addresses are queued.
func (t *Torrent) AddPeers(addrs ...netip.AddrPort) {
	select {
	case t.addPeers <- addrs:
	case <-t.loopDone:
	}
}

// Run downloads and seeds until ctx is cancelled, and returns nil then.
// It returns a *WriteError as soon as the storage fails to write a
// verified piece (a full disk, a read-only folder): retrying would only
// download the piece again to fail again. On return all peer connections
// are closed, a "stopped" announce was attempted, every verification in
// flight has finished (Have counts the pieces it wrote) and, with
// SyncOnStop, the storage was synced (the caller closes it).
func (t *Torrent) Run(ctx context.Context) error {
	t.running.Store(true)
	defer close(t.stopped)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		t.publishStats(time.Now())
		close(t.loopDone)
		cancel()
		for p := range t.peers {
			p.conn.Close()
		}
		// Drain events so peer goroutines can finish.
		go func() {
			for range t.events {
			}
		}()
		wg.Wait()
		close(t.events)
		// Let verifications finish their writes before we return (and
		// before the sync), so a piece that passed its hash is stored
		// and counted.
		t.drainVerifications()
		if t.cfg.SyncOnStop {
			if err := t.store.Sync(); err != nil {
				t.log.Warn("sync storage", "err", err)
			}
		}
	}()

	t.startWebSeeds(ctx, &wg)
	if t.pk.remaining() == 0 {
		t.markComplete()
	}

	tick := time.NewTicker(min(time.Second, t.cfg.RechokeInterval))
	redial := time.NewTimer(time.Hour)
	defer redial.Stop()
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-t.events:
			t.handleEvent(ctx, &wg, ev)
		case h := <-t.conns:
			t.dialing -= boolInt(h.outgoing)
			if h.conn == nil && h.err != nil {
				// A failed dial: back off that address, and look for
				// another one to dial now rather than at the next tick.
				t.dialFailed(h.addr, h.err, time.Now())
				redial.Reset(redialAfter)
			}
			t.addConn(ctx, &wg, h)
		case <-redial.C:
			t.dialMore(ctx, &wg, time.Now())
		case addrs := <-t.addPeers:
			t.learn(addrs)
			t.dialMore(ctx, &wg, time.Now())
		case r := <-t.hashed:
			t.onHashed(r)
			if t.failure != nil {
				return t.failure
			}
			// A freed piece buffer may unblock peers waiting for one.
			for p := range t.peers {
				t.fillRequests(p)
			}
		case r := <-t.wsReqs:
			t.onWebSeedRequest(r, time.Now())
		case r := <-t.wsResults:
			t.onWebSeedResult(r, time.Now())
			for p := range t.peers {
				t.fillRequests(p)
			}
		case f := <-t.calls:
			f()
		case <-t.statsReq:
			t.publishStats(time.Now())
			t.statsDone <- struct{}{}
		case now := <-tick.C:
			t.onTick(ctx, &wg, now)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t *Torrent) onTick(ctx context.Context, wg *sync.WaitGroup, now time.Time) {
	for p := range t.peers {
		p.rate.update(p.downloaded, now)
		p.upRate.update(p.uploaded.Load(), now)
		p.updateDepth(now)
		if len(p.pending) > 0 && now.Sub(p.lastPiece) > requestTimeout {
			t.log.Info("peer is not answering requests; asking others", "peer", p.addr, "pending", len(p.pending))
			for k := range p.pending {
				p.cancelled[k] = struct{}{}
				p.send(peerwire.Message{ID: peerwire.Cancel, Index: k.index(), Begin: k.begin(), Length: uint32(t.blockLenAt(k))})
			}
			t.releaseAll(p)
			p.depth = 1
			p.lastPiece = now
		}
		t.superOffer(p, now)
		p.snubbed = p.amInterested && now.Sub(p.lastPiece) > snubAfter && now.Sub(p.interestedAt) > snubAfter
	}
	if now.Sub(t.lastRechoke) >= t.cfg.RechokeInterval {
		rotate := now.Sub(t.lastOptimistic) >= 3*t.cfg.RechokeInterval
		if rotate {
			t.lastOptimistic = now
		}
		t.lastRechoke = now
		t.rechoke(now, rotate)
	}
	for p := range t.peers {
		t.fillRequests(p)
	}
	t.dialMore(ctx, wg, now)
	t.sendPEX(now)
	t.publishStats(now)
}

// Files converts a torrent's file list to the storage layout's.
func Files(info *metainfo.Info) []storage.File {
	entries := info.FileEntries()
	files := make([]storage.File, len(entries))
	for i, e := range entries {
		files[i] = storage.File{Path: e.Path, Length: e.Length, Padding: e.Padding}
	}
	return files
}
