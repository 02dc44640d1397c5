package engine

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sowerbt/sower/internal/bitfield"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
	"github.com/sowerbt/sower/tracker"
)

// Config tunes one torrent. Zero values take the documented defaults.
type Config struct {
	PeerID [20]byte // our peer id; default a fresh peerwire.NewPeerID()
	Port   uint16   // the listening port we announce; 0 if not listening

	// Trackers are the announce tiers (BEP 12); nil means no tracker.
	Trackers [][]string
	// Tracker is the client used for announces; default a new tracker.Client.
	Tracker *tracker.Client

	// Have is the set of verified pieces found on disk (storage.Recheck);
	// default none.
	Have bitfield.Bitfield
	// WantedFiles selects files to download (selective download); nil means all.
	WantedFiles []bool

	MaxPeers    int           // connected peers at most; default 60
	MaxDialing  int           // concurrent outgoing dials; default 10
	DialTimeout time.Duration // default 5 s
	PeerTimeout time.Duration // a peer silent this long is dropped; default 2 min
	KeepAlive   time.Duration // idle time before we send a keep-alive; default 90 s
	MaxUnchoked int           // upload slots; default 8
	// MaxBuffer bounds memory for in-flight and hashing pieces; default 64 MiB.
	MaxBuffer   int64
	HashWorkers int // parallel piece verifications; default GOMAXPROCS

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
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = 2 * time.Minute
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 90 * time.Second
	}
	if c.MaxUnchoked <= 0 {
		c.MaxUnchoked = 8
	}
	if c.MaxBuffer <= 0 {
		c.MaxBuffer = 64 << 20
	}
	if c.HashWorkers <= 0 {
		c.HashWorkers = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Tracker == nil {
		c.Tracker = &tracker.Client{}
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
	blocks   blockPool
	uploaded atomic.Int64
	hashSem  chan struct{}
	workers  sync.WaitGroup // piece verifications in flight
	// protocolCloses counts connections we closed on purpose; tests read it.
	protocolCloses atomic.Int64

	statsMu sync.Mutex
	stats   Stats

	// Owner state.
	pk         *picker
	peers      map[*peer]struct{}
	byAddr     map[netip.AddrPort]*peer
	known      map[netip.AddrPort]*candidate
	banned     map[netip.AddrPort]bool // see banKey
	dialing    int
	freeBufs   [][]byte
	buffers    int // piece buffers allocated (in use or free)
	downloaded int64
	wasted     int64
	hashFails  int
	down, up   rateMeter
	announcer  *tracker.Announcer
	complete   bool
}

// candidate is a peer address we may dial.
type candidate struct {
	failures int
	nextTry  time.Time
}

// handshaked is a connection whose BitTorrent handshake is done.
type handshaked struct {
	conn     net.Conn
	id       [20]byte
	reserved peerwire.Reserved
	outgoing bool
}

type hashResult struct {
	pc  *piece
	ok  bool
	err error // storage write failed
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
	wanted, err := wantedPieces(layout, cfg.WantedFiles)
	if err != nil {
		return nil, err
	}
	t := &Torrent{
		cfg:      cfg,
		info:     info,
		infoHash: infoHash,
		layout:   layout,
		store:    store,
		log:      cfg.Logger.With("torrent", info.Name),
		events:   make(chan event, 256),
		conns:    make(chan *handshaked, 16),
		addPeers: make(chan []netip.AddrPort, 16),
		hashed:   make(chan hashResult, 16),
		stopped:  make(chan struct{}),
		done:     make(chan struct{}),
		hashSem:  make(chan struct{}, cfg.HashWorkers),
		pk:       newPicker(n, have, wanted),
		peers:    make(map[*peer]struct{}),
		byAddr:   make(map[netip.AddrPort]*peer),
		known:    make(map[netip.AddrPort]*candidate),
		banned:   make(map[netip.AddrPort]bool),
	}
	t.publishStats(time.Now())
	return t, nil
}

// wantedPieces marks the pieces that touch a wanted, non-padding file.
func wantedPieces(l *storage.Layout, wantedFiles []bool) ([]bool, error) {
	files := l.Files()
	if wantedFiles != nil && len(wantedFiles) != len(files) {
		return nil, fmt.Errorf("engine: %d wanted flags for %d files", len(wantedFiles), len(files))
	}
	w := make([]bool, l.NumPieces())
	if len(w) == 0 {
		return w, nil
	}
	for i, f := range files {
		if f.Padding || f.Length == 0 || (wantedFiles != nil && !wantedFiles[i]) {
			continue
		}
		off := l.FileOffset(i)
		first := int(off / l.PieceLength())
		last := int((off + f.Length - 1) / l.PieceLength())
		for p := first; p <= last; p++ {
			w[p] = true
		}
	}
	return w, nil
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
	case <-t.stopped:
	}
}

// Run downloads and seeds until ctx is cancelled. On return all peer
// connections are closed, a "stopped" announce was attempted and the
// storage was synced (the caller closes it).
func (t *Torrent) Run(ctx context.Context) error {
	defer close(t.stopped)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
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
		// Let verifications finish their writes before the sync, so a
		// piece that passed its hash is on disk when we return.
		go func() {
			for range t.hashed {
			}
		}()
		t.workers.Wait()
		close(t.hashed)
		if err := t.store.Sync(); err != nil {
			t.log.Warn("sync storage", "err", err)
		}
	}()

	peersFromTracker := make(chan []tracker.Peer, 4)
	if len(t.cfg.Trackers) > 0 {
		t.announcer = tracker.NewAnnouncer(t.cfg.Tracker, t.cfg.Trackers, t.infoHash, t.cfg.PeerID, t.cfg.Port, t.log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.announcer.Run(ctx, t.trackerStats, peersFromTracker)
		}()
	}
	if t.pk.left == 0 {
		t.markComplete()
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-t.events:
			t.handleEvent(ctx, &wg, ev)
		case h := <-t.conns:
			t.dialing -= boolInt(h.outgoing)
			t.addConn(ctx, &wg, h)
		case addrs := <-t.addPeers:
			t.learn(addrs)
			t.dialMore(ctx, &wg, time.Now())
		case ps := <-peersFromTracker:
			addrs := make([]netip.AddrPort, 0, len(ps))
			for _, p := range ps {
				addrs = append(addrs, p.Addr)
			}
			t.learn(addrs)
			t.dialMore(ctx, &wg, time.Now())
		case r := <-t.hashed:
			t.onHashed(r)
			// A freed piece buffer may unblock peers waiting for one.
			for p := range t.peers {
				t.fillRequests(p)
			}
		case now := <-tick.C:
			t.onTick(ctx, &wg, now)
		}
	}
}

// banKey is what a ban applies to: the IP address, as peers come back on
// new ports; but on loopback, where every test peer and local client
// shares one address, the address and port.
func banKey(a netip.AddrPort) netip.AddrPort {
	if a.Addr().IsLoopback() {
		return a
	}
	return netip.AddrPortFrom(a.Addr(), 0)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// trackerStats is called by the announcer goroutine; it reads the snapshot.
func (t *Torrent) trackerStats() tracker.Stats {
	s := t.Stats()
	return tracker.Stats{Uploaded: s.Uploaded, Downloaded: s.Downloaded, Left: s.Left}
}

func (t *Torrent) learn(addrs []netip.AddrPort) {
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !a.IsValid() || a.Port() == 0 || t.banned[banKey(a)] {
			continue
		}
		if t.cfg.Port != 0 && a.Port() == t.cfg.Port && a.Addr().IsLoopback() {
			// Trackers hand us back to ourselves; the handshake would
			// catch it too, but a dial is wasted.
			continue
		}
		if _, ok := t.known[a]; !ok {
			t.known[a] = &candidate{}
		}
	}
}

// dialMore starts dials to known, unconnected peers while limits allow.
func (t *Torrent) dialMore(ctx context.Context, wg *sync.WaitGroup, now time.Time) {
	if t.complete {
		return // seeds wait for leechers to come
	}
	for a, c := range t.known {
		if len(t.peers)+t.dialing >= t.cfg.MaxPeers || t.dialing >= t.cfg.MaxDialing {
			return
		}
		if t.byAddr[a] != nil || now.Before(c.nextTry) || t.banned[banKey(a)] {
			continue
		}
		// Back off exponentially on failures; nextTry is pushed now so a
		// dial in flight is not repeated.
		c.nextTry = now.Add(time.Duration(1<<min(c.failures, 8)) * 10 * time.Second)
		t.dialing++
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := t.dial(ctx, a)
			if err != nil {
				t.log.Debug("dial failed", "peer", a, "err", err)
				h = &handshaked{outgoing: true} // reports the dial slot free
			}
			select {
			case t.conns <- h:
			case <-ctx.Done():
				if h.conn != nil {
					h.conn.Close()
				}
			}
		}()
	}
}

func (t *Torrent) ourHandshake() peerwire.Handshake {
	h := peerwire.Handshake{InfoHash: t.infoHash, PeerID: t.cfg.PeerID}
	h.Reserved.SetFast()
	h.Reserved.SetExtended()
	return h
}

func (t *Torrent) dial(ctx context.Context, a netip.AddrPort) (*handshaked, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", a.String())
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(t.cfg.DialTimeout + 10*time.Second))
	if err := peerwire.WriteHandshake(conn, t.ourHandshake()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send handshake: %w", err)
	}
	h, err := peerwire.ReadHandshake(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read handshake: %w", err)
	}
	if h.InfoHash != t.infoHash {
		conn.Close()
		return nil, fmt.Errorf("peer answered for another torrent %x", h.InfoHash)
	}
	conn.SetDeadline(time.Time{})
	return &handshaked{conn: conn, id: h.PeerID, reserved: h.Reserved, outgoing: true}, nil
}

// acceptIncoming finishes the handshake of a connection whose info-hash
// the listener already read, and hands it to the owner.
func (t *Torrent) acceptIncoming(ctx context.Context, conn net.Conn, reserved peerwire.Reserved) {
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := peerwire.WriteHandshake(conn, t.ourHandshake()); err != nil {
		conn.Close()
		return
	}
	id, err := peerwire.ReadPeerID(conn)
	if err != nil {
		t.log.Debug("incoming handshake", "peer", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	select {
	case t.conns <- &handshaked{conn: conn, id: id, reserved: reserved}:
	case <-ctx.Done():
		conn.Close()
	case <-t.stopped:
		conn.Close()
	}
}

// addConn turns a handshaked connection into a running peer.
func (t *Torrent) addConn(ctx context.Context, wg *sync.WaitGroup, h *handshaked) {
	if h.conn == nil {
		return // failed dial
	}
	ap, _ := netip.ParseAddrPort(h.conn.RemoteAddr().String())
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	switch {
	case h.id == t.cfg.PeerID:
		t.log.Debug("dropping connection to ourselves", "peer", ap)
		if c := t.known[ap]; c != nil {
			c.nextTry = time.Now().Add(24 * time.Hour)
		}
		h.conn.Close()
		return
	case t.banned[banKey(ap)]:
		h.conn.Close()
		return
	case len(t.peers) >= t.cfg.MaxPeers:
		h.conn.Close()
		return
	}
	for q := range t.peers {
		if q.id == h.id {
			h.conn.Close() // already connected to this peer the other way
			return
		}
	}
	if c := t.known[ap]; c != nil {
		c.failures = 0
	}
	p := &peer{
		conn:        h.conn,
		addr:        ap,
		id:          h.id,
		reserved:    h.reserved,
		outgoing:    h.outgoing,
		client:      peerwire.ClientName(h.id),
		notify:      make(chan struct{}, 1),
		closed:      make(chan struct{}),
		has:         bitfield.New(t.pk.numPieces),
		amChoking:   true,
		peerChoking: true,
		pending:     make(map[blockKey]time.Time),
		cancelled:   make(map[blockKey]struct{}),
		maxRequests: 250,
		depth:       32,
		connected:   time.Now(),
		lastPiece:   time.Now(),
	}
	t.peers[p] = struct{}{}
	t.byAddr[ap] = p
	t.log.Debug("peer connected", "peer", ap, "client", p.client, "outgoing", h.outgoing)

	if p.reserved.SupportsExtended() {
		p.send(t.extHandshake())
	}
	switch {
	case p.fast() && t.pk.have.Full():
		p.send(peerwire.Message{ID: peerwire.HaveAll})
	case p.fast() && t.pk.have.Count() == 0:
		p.send(peerwire.Message{ID: peerwire.HaveNone})
	case t.pk.have.Count() > 0:
		p.send(peerwire.Message{ID: peerwire.Bitfield, Payload: t.pk.have.Clone().Bytes()})
	}
	dec := peerwire.NewDecoder(h.conn, peerwire.Limits{
		NumPieces:   t.pk.numPieces,
		PieceLength: t.info.PieceLength,
		TotalLength: t.info.TotalLength(),
		MaxBlock:    128 << 10,
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.runPeer(ctx, p, dec)
	}()
}

// dropPeer forgets a peer whose goroutines have stopped.
func (t *Torrent) dropPeer(p *peer, reason error) {
	if _, ok := t.peers[p]; !ok {
		return
	}
	delete(t.peers, p)
	if t.byAddr[p.addr] == p {
		delete(t.byAddr, p.addr)
	}
	for i := 0; i < t.pk.numPieces && p.has.Count() > 0; i++ {
		if p.has.Has(i) {
			t.pk.avail[i]--
		}
	}
	t.releaseAll(p)
	if c := t.known[p.addr]; c != nil && p.outgoing {
		c.failures++
	}
	t.log.Debug("peer disconnected", "peer", p.addr, "reason", reason)
}

// closePeer disconnects a peer for a protocol reason; dropPeer runs when
// its goroutines report back.
func (t *Torrent) closePeer(p *peer, reason string) {
	t.protocolCloses.Add(1)
	t.log.Info("closing peer connection", "peer", p.addr, "client", p.client, "reason", reason)
	if p.cancel != nil {
		p.cancel()
	}
	p.conn.Close()
}

// releaseAll returns all of p's outstanding requests to the picker.
func (t *Torrent) releaseAll(p *peer) {
	for k := range p.pending {
		if pc := t.pk.active[int(k.index())]; pc != nil {
			pc.release(int(k.begin() / blockSize))
		}
	}
	clear(p.pending)
}

func (t *Torrent) handleEvent(ctx context.Context, wg *sync.WaitGroup, ev event) {
	p := ev.p
	if ev.gone {
		t.dropPeer(p, ev.err)
		return
	}
	if _, ok := t.peers[p]; !ok {
		if ev.block != nil {
			t.blocks.put(ev.block)
		}
		return // late message from a peer being closed
	}
	if err := t.handleMessage(p, ev.msg, ev.block); err != nil {
		t.closePeer(p, err.Error())
		return
	}
	t.fillRequests(p)
}

func (t *Torrent) handleMessage(p *peer, m peerwire.Message, data []byte) error {
	switch m.ID {
	case peerwire.Choke:
		p.peerChoking = true
		if !p.fast() {
			// Without the fast extension a choke discards our requests.
			t.releaseAll(p)
		}
	case peerwire.Unchoke:
		p.peerChoking = false
	case peerwire.Interested:
		p.peerInterested = true
		t.unchokeIfSlot(p)
	case peerwire.NotInterested:
		p.peerInterested = false
		if !p.amChoking {
			t.choke(p)
		}
	case peerwire.Have:
		i := int(m.Index)
		if !p.has.Has(i) {
			p.has.Set(i)
			t.pk.avail[i]++
			if p.has.Full() {
				p.seed = true
			}
			if t.pk.needs(i) && !p.amInterested {
				p.amInterested = true
				p.send(peerwire.Message{ID: peerwire.Interested})
			}
		}
	case peerwire.Bitfield:
		if p.has.Count() > 0 {
			return errors.New("bitfield after have messages")
		}
		bf, err := bitfield.FromBytes(m.Payload, t.pk.numPieces)
		if err != nil {
			return err
		}
		t.setHas(p, bf)
	case peerwire.HaveAll:
		if !p.fast() {
			return errors.New("have-all without fast extension")
		}
		bf := bitfield.New(t.pk.numPieces)
		bf.SetAll()
		t.setHas(p, bf)
	case peerwire.HaveNone:
		if !p.fast() {
			return errors.New("have-none without fast extension")
		}
		t.updateInterest(p)
	case peerwire.Request:
		return t.onRequest(p, m)
	case peerwire.Cancel:
		if p.dropUpload(m.Index, m.Begin, m.Length) {
			if p.fast() {
				p.send(peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
			}
		}
	case peerwire.Piece:
		return t.onBlock(p, m, data)
	case peerwire.Reject:
		if !p.fast() {
			return errors.New("reject without fast extension")
		}
		k := makeKey(m.Index, m.Begin)
		if _, ok := p.pending[k]; ok {
			delete(p.pending, k)
			if pc := t.pk.active[int(m.Index)]; pc != nil {
				pc.release(int(m.Begin / blockSize))
			}
		} else if _, ok := p.cancelled[k]; ok {
			delete(p.cancelled, k)
		}
	case peerwire.AllowedFast:
		if p.allowedFast == nil {
			p.allowedFast = make(map[uint32]bool)
		}
		if len(p.allowedFast) < 64 {
			p.allowedFast[m.Index] = true
		}
	case peerwire.Extended:
		if m.ExtendedID == 0 {
			t.onExtHandshake(p, m.Payload)
		}
	case peerwire.Port, peerwire.Suggest:
		// DHT and suggestions are handled by later layers; ignoring
		// them is always legal.
	}
	return nil
}

func (t *Torrent) setHas(p *peer, bf bitfield.Bitfield) {
	for i := 0; i < t.pk.numPieces; i++ {
		if bf.Has(i) && !p.has.Has(i) {
			t.pk.avail[i]++
		}
	}
	p.has = bf
	p.seed = bf.Full()
	if p.seed && t.complete {
		// Two seeds have nothing to say to each other.
		t.closePeer(p, "both seeds")
		return
	}
	t.updateInterest(p)
}

// updateInterest tells the peer whether it has anything we want.
func (t *Torrent) updateInterest(p *peer) {
	want := false
	if !t.complete {
		for i := 0; i < t.pk.numPieces; i++ {
			if p.has.Has(i) && t.pk.needs(i) {
				want = true
				break
			}
		}
	}
	if want != p.amInterested {
		p.amInterested = want
		if want {
			p.send(peerwire.Message{ID: peerwire.Interested})
		} else {
			p.send(peerwire.Message{ID: peerwire.NotInterested})
		}
	}
}

func (t *Torrent) onRequest(p *peer, m peerwire.Message) error {
	reject := func() {
		if p.fast() {
			p.send(peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
		}
	}
	if p.amChoking || !t.pk.have.Has(int(m.Index)) {
		reject()
		return nil
	}
	if p.uploads.Load() >= maxPeerRequests {
		return fmt.Errorf("request flood: more than %d outstanding requests", maxPeerRequests)
	}
	p.uploads.Add(1)
	p.enqueue(outItem{msg: m, upload: true})
	return nil
}

// maxPeerRequests is how many unanswered requests a peer may queue at us;
// we advertise it as reqq in the extension handshake, with slack because
// messages cross.
const maxPeerRequests = 2048

func (t *Torrent) unchokeIfSlot(p *peer) {
	if !p.amChoking || !p.peerInterested {
		return
	}
	n := 0
	for q := range t.peers {
		if !q.amChoking {
			n++
		}
	}
	if n < t.cfg.MaxUnchoked {
		p.amChoking = false
		p.send(peerwire.Message{ID: peerwire.Unchoke})
	}
}

func (t *Torrent) choke(p *peer) {
	p.amChoking = true
	p.send(peerwire.Message{ID: peerwire.Choke})
	for _, m := range p.dropAllUploads() {
		if p.fast() {
			p.send(peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
		}
	}
}

// onBlock stores a received block in its piece and starts the hash check
// when the piece is whole.
func (t *Torrent) onBlock(p *peer, m peerwire.Message, data []byte) error {
	defer t.blocks.put(data)
	k := makeKey(m.Index, m.Begin)
	n := int64(len(data))
	if _, ok := p.pending[k]; ok {
		delete(p.pending, k)
	} else if _, ok := p.cancelled[k]; ok {
		delete(p.cancelled, k)
	} else {
		return fmt.Errorf("unrequested block %d+%d", m.Index, m.Begin)
	}
	p.downloaded += n
	p.lastPiece = time.Now()
	t.downloaded += n
	pc := t.pk.active[int(m.Index)]
	b := int(m.Begin / blockSize)
	if pc == nil || pc.hashing || m.Begin%blockSize != 0 || b >= len(pc.blocks) || pc.blocks[b].have {
		t.wasted += n // end-game duplicate or a piece already done
		if pc != nil && b < len(pc.blocks) {
			pc.release(b)
		}
		return nil
	}
	if int(n) != pc.blockLen(b) {
		return fmt.Errorf("block %d+%d has %d bytes, requested %d", m.Index, m.Begin, n, pc.blockLen(b))
	}
	copy(pc.buf[m.Begin:], data)
	pc.release(b)
	pc.blocks[b].have = true
	pc.blocks[b].from = p.addr
	pc.received++
	// Cancel copies of this block requested from other peers (end game).
	for q := range t.peers {
		if q == p {
			continue
		}
		if _, ok := q.pending[k]; ok {
			delete(q.pending, k)
			q.cancelled[k] = struct{}{}
			pc.release(b)
			q.send(peerwire.Message{ID: peerwire.Cancel, Index: m.Index, Begin: m.Begin, Length: uint32(n)})
		}
	}
	if pc.received == len(pc.blocks) {
		pc.hashing = true
		t.verify(pc)
	}
	return nil
}

// verify hashes a complete piece and writes it, off the owner goroutine.
func (t *Torrent) verify(pc *piece) {
	want := t.info.Pieces[pc.index]
	t.workers.Add(1)
	go func() {
		defer t.workers.Done()
		t.hashSem <- struct{}{}
		ok := sha1.Sum(pc.buf) == want
		var err error
		if ok {
			off := int64(pc.index) * t.info.PieceLength
			_, err = t.store.WriteAt(pc.buf, off)
		}
		<-t.hashSem
		t.hashed <- hashResult{pc: pc, ok: ok, err: err}
	}()
}

func (t *Torrent) onHashed(r hashResult) {
	pc := r.pc
	i := pc.index
	t.pk.finish(i)
	t.freeBufs = append(t.freeBufs, pc.buf[:cap(pc.buf)])
	switch {
	case r.err != nil:
		t.log.Error("writing piece failed; will download it again", "piece", i, "err", r.err)
		return
	case !r.ok:
		t.hashFails++
		t.wasted += int64(pc.size)
		t.onHashFail(pc)
		return
	}
	t.pk.have.Set(i)
	t.pk.left--
	for p := range t.peers {
		if !p.has.Has(i) {
			p.send(peerwire.Message{ID: peerwire.Have, Index: uint32(i)})
		}
		if p.amInterested && p.has.Has(i) {
			t.updateInterest(p)
		}
	}
	if t.pk.left == 0 {
		t.markComplete()
	}
}

// onHashFail blames the peers that sent the bad piece. A peer that sent
// the whole piece alone is certainly lying and is banned; contributors to
// a mixed piece are banned after repeated failures.
func (t *Torrent) onHashFail(pc *piece) {
	senders := map[netip.AddrPort]bool{}
	for _, b := range pc.blocks {
		senders[b.from] = true
	}
	t.log.Warn("piece failed hash check; downloading it again", "piece", pc.index, "peers", len(senders))
	for a := range senders {
		p := t.byAddr[a]
		if p == nil {
			continue
		}
		p.hashFails++
		if len(senders) == 1 || p.hashFails >= 3 {
			t.banned[banKey(a)] = true
			t.closePeer(p, fmt.Sprintf("sent data that failed the hash check (%d pieces)", p.hashFails))
		}
	}
}

func (t *Torrent) markComplete() {
	t.complete = true
	t.doneOnce.Do(func() { close(t.done) })
	if t.announcer != nil {
		t.announcer.Completed()
	}
	for p := range t.peers {
		t.updateInterest(p)
		if p.seed {
			t.closePeer(p, "both seeds")
		}
	}
	t.publishStats(time.Now())
	t.log.Info("download complete")
}

// fillRequests keeps the peer's request pipeline at its target depth.
func (t *Torrent) fillRequests(p *peer) {
	if p.peerChoking || !p.amInterested || t.complete {
		return
	}
	limit := min(p.depth, p.maxRequests)
	for len(p.pending) < limit {
		pc, b := t.nextBlock(p)
		if pc == nil {
			return
		}
		pc.blocks[b].reqs++
		k := makeKey(uint32(pc.index), uint32(b*blockSize))
		delete(p.cancelled, k)
		p.pending[k] = time.Now()
		p.send(peerwire.Message{ID: peerwire.Request, Index: uint32(pc.index), Begin: uint32(b * blockSize), Length: uint32(pc.blockLen(b))})
	}
}

// nextBlock chooses the next block to request from p: first unrequested
// blocks of pieces already in flight (finish what is started), then a new
// piece by rarity, and at the very end a block already requested from
// another peer (end game).
func (t *Torrent) nextBlock(p *peer) (*piece, int) {
	for _, i := range t.pk.order {
		pc := t.pk.active[i]
		if pc.hashing || !(p.seed || p.has.Has(i)) {
			continue
		}
		if b := pc.unrequested(); b >= 0 {
			return pc, b
		}
	}
	if buf := t.pieceBuffer(); buf != nil {
		if i := t.pk.pickNew(p.has, p.seed); i >= 0 {
			return t.pk.start(i, int(t.info.PieceSize(i)), buf), 0
		}
		t.freeBufs = append(t.freeBufs, buf)
	}
	// End game: nothing unrequested is left that this peer could fetch, so
	// duplicate requests still outstanding elsewhere; the first copy wins
	// and the others are cancelled.
	for _, i := range t.pk.order {
		pc := t.pk.active[i]
		if pc.hashing || !(p.seed || p.has.Has(i)) {
			continue
		}
		for b := range pc.blocks {
			blk := &pc.blocks[b]
			if blk.have || blk.reqs >= 2 {
				continue
			}
			if _, mine := p.pending[makeKey(uint32(i), uint32(b*blockSize))]; mine {
				continue
			}
			if !t.inEndGame() {
				return nil, 0
			}
			return pc, b
		}
	}
	return nil, 0
}

// inEndGame reports whether every missing wanted piece is in flight, the
// documented entry rule: no piece is left to start.
func (t *Torrent) inEndGame() bool {
	return len(t.pk.active) >= t.pk.left
}

// pieceBuffer returns a buffer for a new piece, or nil when the memory
// budget is used up (hashing is behind or too many pieces are in flight).
func (t *Torrent) pieceBuffer() []byte {
	if n := len(t.freeBufs); n > 0 {
		b := t.freeBufs[n-1]
		t.freeBufs = t.freeBufs[:n-1]
		return b
	}
	maxBufs := max(4, int(t.cfg.MaxBuffer/t.info.PieceLength))
	if t.buffers >= maxBufs {
		return nil
	}
	t.buffers++
	return make([]byte, t.info.PieceLength)
}

func (t *Torrent) onTick(ctx context.Context, wg *sync.WaitGroup, now time.Time) {
	for p := range t.peers {
		p.rate.update(p.downloaded, now)
		p.upRate.update(p.uploaded.Load(), now)
		// Queue depth from the measured rate: enough requests to cover
		// about a second of transfer at the current speed, so a fast
		// link is never idle waiting for the next request.
		p.depth = int(min(max(p.rate.rate/blockSize, 16), 1024))
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
		t.unchokeIfSlot(p)
	}
	for p := range t.peers {
		t.fillRequests(p)
	}
	t.dialMore(ctx, wg, now)
	t.publishStats(now)
}

func (t *Torrent) blockLenAt(k blockKey) int64 {
	ps := t.info.PieceSize(int(k.index()))
	return min(blockSize, ps-int64(k.begin()))
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
