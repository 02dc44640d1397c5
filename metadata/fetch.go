package metadata

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sowerbt/sower/peerwire"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxConns    = 8
	DefaultDialTimeout = 10 * time.Second
	DefaultMaxSize     = 16 << 20
	// DefaultRequestTimeout is generous: a piece is 16 KiB, but a peer may
	// be busy uploading to many others.
	DefaultRequestTimeout = 30 * time.Second
)

const (
	// ourExtID is the extended message id we ask peers to use when they send
	// us ut_metadata messages. The value is ours to choose (BEP 10).
	ourExtID = 1
	// perPeerRequests bounds the requests outstanding at one peer. Metadata
	// is small, so a few in flight keep a peer busy while leaving pieces
	// for the others.
	perPeerRequests = 4
	// keepAliveInterval keeps idle connections (peers held in reserve)
	// open; peers commonly drop connections silent for two minutes.
	keepAliveInterval = 90 * time.Second
	// maxQueued bounds the addresses waiting for a free connection slot, and
	// maxSeen the addresses remembered to avoid dialling one twice, so that
	// a flood of peer addresses cannot grow memory without bound.
	maxQueued = 1000
	maxSeen   = 10000
)

// Errors that say why Fetch gave up, for errors.Is.
var (
	// ErrNoPeers means the peer channel closed without a usable address.
	ErrNoPeers = errors.New("no peers to fetch metadata from")
	// ErrNoPeerLeft means every peer was tried and none supplied metadata
	// hashing to the info-hash.
	ErrNoPeerLeft = errors.New("no peer supplied the metadata")
)

// errNoExtension marks a peer without the extension protocol or without
// ut_metadata in its extension handshake.
var errNoExtension = errors.New("peer does not support ut_metadata")

// Config tunes Fetch. The zero value works, apart from PeerID, which
// should be the client's peer id.
type Config struct {
	// PeerID is sent in the BitTorrent handshake.
	PeerID [20]byte
	// Port is our listening port, announced as "p" in the extension
	// handshake so peers can connect back; 0 leaves it out.
	Port uint16
	// MaxConns bounds the connections (dialling or open) at any time;
	// 0 means DefaultMaxConns.
	MaxConns int
	// DialTimeout bounds the TCP connect and, separately, the two
	// handshakes that follow it; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Connect, if set, opens connections in place of a TCP dial: it
	// connects to addr and sends hs, our BitTorrent handshake, so that
	// what the connection yields next is the peer's handshake (a session
	// applies its encryption policy this way, see engine.Config.Connect).
	// It must return within its context's deadline (DialTimeout).
	Connect func(ctx context.Context, addr netip.AddrPort, hs []byte) (net.Conn, error)
	// RequestTimeout is how long a peer has to answer a request before it
	// is dropped and the piece asked of another; 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxSize is the largest metadata accepted; peers announcing more are
	// dropped. 0 means DefaultMaxSize; values above MaxSize are lowered to
	// it.
	MaxSize int
	// Logger receives per-peer debug logs; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	c.MaxSize = min(c.MaxSize, MaxSize)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Fetch dials the peers that arrive on peers (from trackers, the DHT or a
// magnet link's x.pe), asks those that support ut_metadata for the pieces
// of the info dictionary, several peers in parallel, and returns the
// dictionary's bytes once their SHA-1 equals infoHash.
//
// A peer that rejects a request, lacks ut_metadata, announces a size above
// Config.MaxSize, sends a malformed or unrequested piece or does not answer
// within a while is dropped, and its pieces are asked of others. Corrupt
// data is only visible in the final hash; after a mismatch each further
// attempt takes every piece from a single peer, and a peer whose own pieces
// fail the hash is dropped.
//
// Fetch returns when done, when ctx ends, or when the channel has closed
// and every peer from it has failed; the error then wraps ErrNoPeers,
// ErrNoPeerLeft or ctx.Err() and counts why the peers failed. All
// connections are closed before Fetch returns.
func Fetch(ctx context.Context, infoHash [20]byte, peers <-chan netip.AddrPort, cfg Config) ([]byte, error) {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher{
		infoHash: infoHash,
		cfg:      cfg,
		log:      cfg.Logger.With("infohash", fmt.Sprintf("%x", infoHash)),
		events:   make(chan event, 64),
		seen:     make(map[netip.AddrPort]bool),
		conns:    make(map[*peerConn]struct{}),
		assigned: make(map[int]*peerConn),
		failed:   make(map[string]int),
	}
	defer func() {
		cancel()
		f.wg.Wait()
	}()
	return f.run(ctx, peers)
}

// peerConn is one connection. The session goroutine uses only addr, ctx,
// cancel and out; every other field belongs to the Fetch goroutine.
type peerConn struct {
	addr   netip.AddrPort
	ctx    context.Context
	cancel context.CancelFunc
	out    chan peerwire.Message // messages for the session's writer

	ready   bool
	extID   uint8
	size    int
	client  string
	pending map[int]time.Time // requested pieces and their deadlines
	dropped string            // why we dropped it, if we did
	wasSole bool              // has been the single source once
}

type eventKind int

const (
	evReady eventKind = iota // handshakes done
	evMsg                    // a ut_metadata message arrived
	evGone                   // the session ended
)

type event struct {
	kind   eventKind
	p      *peerConn
	extID  uint8
	size   int
	client string
	msg    Msg
	err    error
}

// peerError classifies why a session ended, for the summary in Fetch's
// error.
type peerError struct {
	reason string
	err    error
}

func (e *peerError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *peerError) Unwrap() error { return e.err }

func failure(reason string, err error) error { return &peerError{reason: reason, err: err} }

type fetcher struct {
	infoHash [20]byte
	cfg      Config
	log      *slog.Logger
	events   chan event
	wg       sync.WaitGroup

	queue  []netip.AddrPort
	seen   map[netip.AddrPort]bool
	active int // sessions started and not yet reported gone
	dialed int
	conns  map[*peerConn]struct{}

	asm      *Assembler  // nil until some peer announces a size
	src      []*peerConn // who sent each held piece
	assigned map[int]*peerConn
	verify   bool      // after a hash mismatch: one source per attempt
	sole     *peerConn // the single source in verify mode

	failed map[string]int // reasons peers failed, counted
}

func (f *fetcher) run(ctx context.Context, peers <-chan netip.AddrPort) ([]byte, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		f.dialMore(ctx)
		if peers == nil && f.active == 0 && len(f.queue) == 0 {
			if f.dialed == 0 {
				return nil, f.failure(ErrNoPeers)
			}
			return nil, f.failure(ErrNoPeerLeft)
		}
		select {
		case <-ctx.Done():
			return nil, f.failure(ctx.Err())
		case a, ok := <-peers:
			if !ok {
				peers = nil
				continue
			}
			f.enqueue(a)
		case ev := <-f.events:
			if data := f.handle(ev); data != nil {
				f.log.Debug("metadata complete", "size", len(data), "peers_dialled", f.dialed)
				return data, nil
			}
		case now := <-tick.C:
			f.checkTimeouts(now)
		}
	}
}

// failure builds Fetch's error: the cause and a count of what went wrong
// with the peers.
func (f *fetcher) failure(cause error) error {
	if len(f.failed) == 0 {
		return fmt.Errorf("metadata for %x: %w (%d peers dialled)", f.infoHash, cause, f.dialed)
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(f.failed)) {
		parts = append(parts, fmt.Sprintf("%d %s", f.failed[r], r))
	}
	return fmt.Errorf("metadata for %x: %w (%d peers dialled: %s)", f.infoHash, cause, f.dialed, strings.Join(parts, ", "))
}

func (f *fetcher) enqueue(a netip.AddrPort) {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	if !a.IsValid() || a.Port() == 0 || a.Addr().IsUnspecified() || a.Addr().IsMulticast() {
		return
	}
	if f.seen[a] || len(f.seen) >= maxSeen || len(f.queue) >= maxQueued {
		return
	}
	f.seen[a] = true
	f.queue = append(f.queue, a)
}

func (f *fetcher) dialMore(ctx context.Context) {
	for f.active < f.cfg.MaxConns && len(f.queue) > 0 {
		a := f.queue[0]
		f.queue = f.queue[1:]
		pctx, pcancel := context.WithCancel(ctx)
		p := &peerConn{
			addr:    a,
			ctx:     pctx,
			cancel:  pcancel,
			out:     make(chan peerwire.Message, perPeerRequests+8),
			pending: make(map[int]time.Time),
		}
		f.conns[p] = struct{}{}
		f.active++
		f.dialed++
		f.wg.Go(func() {
			defer pcancel()
			err := f.session(p)
			select {
			case f.events <- event{kind: evGone, p: p, err: err}:
			case <-ctx.Done():
			}
		})
	}
}

// handle applies one event and returns the verified metadata once there
// is some.
func (f *fetcher) handle(ev event) []byte {
	p := ev.p
	switch ev.kind {
	case evReady:
		p.ready, p.extID, p.size, p.client = true, ev.extID, ev.size, ev.client
		f.log.Debug("peer ready", "peer", p.addr, "client", p.client, "size", p.size)
	case evGone:
		f.active--
		delete(f.conns, p)
		if p.dropped == "" {
			reason := "disconnected"
			if pe, ok := errors.AsType[*peerError](ev.err); ok {
				reason = pe.reason
			}
			f.failed[reason]++
			f.log.Debug("peer gone", "peer", p.addr, "err", ev.err)
		}
		f.release(p)
		p.dropped = "gone"
	case evMsg:
		if p.dropped != "" {
			return nil
		}
		if data := f.onMsg(p, ev.msg); data != nil {
			return data
		}
	}
	f.schedule()
	return nil
}

func (f *fetcher) onMsg(p *peerConn, m Msg) []byte {
	if _, ok := p.pending[m.Piece]; !ok {
		f.drop(p, "sent unrequested messages", fmt.Sprintf("msg_type %d for piece %d, which we did not request", m.Type, m.Piece))
		return nil
	}
	delete(p.pending, m.Piece)
	if f.assigned[m.Piece] == p {
		delete(f.assigned, m.Piece)
	}
	switch m.Type {
	case TypeReject:
		f.drop(p, "rejected", fmt.Sprintf("rejected piece %d", m.Piece))
		return nil
	case TypeData:
	default:
		// Requests are answered by the session and never reach us.
		return nil
	}
	if m.TotalSize != p.size {
		f.drop(p, "sent bad data", fmt.Sprintf("total_size %d, but metadata_size %d in its handshake", m.TotalSize, p.size))
		return nil
	}
	if f.asm == nil || f.asm.Size() != p.size || f.asm.Has(m.Piece) || (f.verify && p != f.sole) {
		// The attempt it was asked for has been abandoned; nothing is wrong.
		return nil
	}
	if err := f.asm.Add(m.Piece, m.Data); err != nil {
		f.drop(p, "sent bad data", err.Error())
		return nil
	}
	f.src[m.Piece] = p
	if !f.asm.Done() {
		return nil
	}
	data, err := f.asm.Bytes()
	if err == nil {
		return data
	}
	sources := make(map[*peerConn]bool)
	for _, s := range f.src {
		sources[s] = true
	}
	if len(sources) == 1 {
		f.drop(p, "sent bad data", err.Error())
	} else {
		f.log.Debug("metadata from several peers fails the hash; asking one peer at a time", "peers", len(sources))
		f.verify = true
	}
	f.restart()
	return nil
}

// restart forgets every piece held, for a new attempt.
func (f *fetcher) restart() {
	if f.asm != nil {
		f.asm.Reset()
		clear(f.src)
	}
	f.sole = nil
}

// drop ends a peer's session for a reason that goes into the summary.
func (f *fetcher) drop(p *peerConn, reason, detail string) {
	if p.dropped != "" {
		return
	}
	f.log.Debug("dropping peer", "peer", p.addr, "client", p.client, "reason", detail)
	p.dropped = reason
	f.failed[reason]++
	f.release(p)
	p.cancel()
}

// release hands the pieces requested from p back to the pool.
func (f *fetcher) release(p *peerConn) {
	for piece := range p.pending {
		if f.assigned[piece] == p {
			delete(f.assigned, piece)
		}
	}
	clear(p.pending)
	if f.sole == p {
		f.restart()
	}
}

func (f *fetcher) usable(p *peerConn) bool {
	return p.ready && p.dropped == "" && (f.asm == nil || p.size == f.asm.Size())
}

// schedule sends requests to the peers that should get them and have room.
func (f *fetcher) schedule() {
	if !f.ensureAssembler() {
		return
	}
	now := time.Now()
	cursor := 0
	for _, p := range f.candidates() {
		for len(p.pending) < perPeerRequests {
			piece := f.nextPiece(&cursor)
			if piece < 0 {
				return
			}
			if !f.request(p, piece, now) {
				break
			}
		}
	}
}

// ensureAssembler makes sure there is an assembler some ready peer can
// fill. Peers may disagree about the size; the first to answer sets it, and
// if no peer announcing it is left, the attempt starts over with the size
// another peer announced.
func (f *fetcher) ensureAssembler() bool {
	if f.asm != nil {
		for p := range f.conns {
			if f.usable(p) {
				return true
			}
		}
	}
	for p := range f.conns {
		if !p.ready || p.dropped != "" {
			continue
		}
		asm, err := NewAssembler(p.size, f.infoHash)
		if err != nil {
			f.drop(p, "announced a bad size", err.Error())
			continue
		}
		f.log.Debug("assembling metadata", "size", p.size, "announced_by", p.addr)
		f.asm = asm
		f.src = make([]*peerConn, asm.NumPieces())
		clear(f.assigned)
		f.sole = nil
		return true
	}
	return false
}

// candidates returns the peers to request pieces from: every usable peer,
// or after a hash mismatch the one peer the current attempt relies on,
// preferring peers not yet tried that way.
func (f *fetcher) candidates() []*peerConn {
	var ps []*peerConn
	for p := range f.conns {
		if f.usable(p) {
			ps = append(ps, p)
		}
	}
	if !f.verify {
		return ps
	}
	if f.sole == nil {
		var pick *peerConn
		for _, p := range ps {
			if pick == nil || (pick.wasSole && !p.wasSole) {
				pick = p
			}
		}
		if pick == nil {
			return nil
		}
		f.restart()
		clear(f.assigned)
		f.sole = pick
		pick.wasSole = true
		f.log.Debug("fetching all metadata from one peer", "peer", pick.addr, "client", pick.client)
	}
	return []*peerConn{f.sole}
}

// nextPiece returns the next piece at or after *cursor that is neither held
// nor requested, or -1.
func (f *fetcher) nextPiece(cursor *int) int {
	for ; *cursor < f.asm.NumPieces(); *cursor++ {
		i := *cursor
		if !f.asm.Has(i) && f.assigned[i] == nil {
			*cursor++
			return i
		}
	}
	return -1
}

// request queues a request for piece at p's writer. It reports false if
// the writer's queue is full; the piece then waits for another round.
func (f *fetcher) request(p *peerConn, piece int, now time.Time) bool {
	payload, err := Msg{Type: TypeRequest, Piece: piece}.Append(nil)
	if err != nil {
		// piece < NumPieces <= PieceCount(MaxSize), so Append cannot fail.
		f.log.Error("encoding ut_metadata request", "piece", piece, "err", err)
		return false
	}
	select {
	case p.out <- peerwire.Message{ID: peerwire.Extended, ExtendedID: p.extID, Payload: payload}:
	default:
		return false
	}
	p.pending[piece] = now.Add(f.cfg.RequestTimeout)
	f.assigned[piece] = p
	return true
}

// checkTimeouts drops peers sitting on a request for too long.
func (f *fetcher) checkTimeouts(now time.Time) {
	for p := range f.conns {
		for piece, deadline := range p.pending {
			if now.After(deadline) {
				f.drop(p, "timed out", fmt.Sprintf("no answer for piece %d in %v", piece, f.cfg.RequestTimeout))
				break
			}
		}
	}
	f.schedule()
}

// session runs one connection: dial, BitTorrent handshake, extension
// handshake, then it forwards ut_metadata messages to the Fetch goroutine
// until p.ctx ends or the connection fails. The returned error says why.
func (f *fetcher) session(p *peerConn) error {
	var res peerwire.Reserved
	res.SetExtended()
	hs := peerwire.Handshake{Reserved: res, InfoHash: f.infoHash, PeerID: f.cfg.PeerID}
	var conn net.Conn
	var err error
	sent := f.cfg.Connect != nil
	if sent {
		var b bytes.Buffer
		peerwire.WriteHandshake(&b, hs) // a bytes.Buffer takes it all
		ctx, cancel := context.WithTimeout(p.ctx, f.cfg.DialTimeout)
		conn, err = f.cfg.Connect(ctx, p.addr, b.Bytes())
		cancel()
	} else {
		d := net.Dialer{Timeout: f.cfg.DialTimeout}
		conn, err = d.DialContext(p.ctx, "tcp", p.addr.String())
	}
	if err != nil {
		return failure("could not be dialled", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(p.ctx, func() { conn.Close() })
	defer stop()

	if err := conn.SetDeadline(time.Now().Add(f.cfg.DialTimeout)); err != nil {
		return failure("failed the handshake", err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	dec := peerwire.NewDecoder(br, peerwire.Limits{})
	ext, size, client, err := f.handshake(conn, br, dec, hs, sent)
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return failure("failed the handshake", err)
	}
	select {
	case f.events <- event{kind: evReady, p: p, extID: ext, size: size, client: client}:
	case <-p.ctx.Done():
		return failure("dropped", p.ctx.Err())
	}

	ctx, cancel := context.WithCancel(p.ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { writeLoop(ctx, conn, p.out, f.cfg.RequestTimeout) })

	for {
		m, err := dec.Next()
		if err != nil {
			if ctx.Err() != nil {
				return failure("dropped", ctx.Err())
			}
			return failure("disconnected", err)
		}
		if m.ID != peerwire.Extended || m.ExtendedID != ourExtID {
			continue
		}
		msg, err := ParseMsg(m.Payload)
		if errors.Is(err, ErrUnknownType) {
			continue // BEP 9: ignore message types we do not know
		}
		if err != nil {
			return failure("sent bad data", err)
		}
		if msg.Type == TypeRequest {
			// We have no metadata yet; BEP 9 says to reject. A peer
			// flooding requests simply gets no answer once the queue is
			// full.
			if payload, err := (Msg{Type: TypeReject, Piece: msg.Piece}).Append(nil); err == nil {
				select {
				case p.out <- peerwire.Message{ID: peerwire.Extended, ExtendedID: ext, Payload: payload}:
				default:
				}
			}
			continue
		}
		select {
		case f.events <- event{kind: evMsg, p: p, msg: msg}:
		case <-ctx.Done():
			return failure("dropped", ctx.Err())
		}
	}
}

// handshake does the BitTorrent handshake hs with the extension bit
// (unless sent already, by Config.Connect; the answer is read
// through br) and the BEP 10 extension handshake (read through dec, which
// the session goes on using), and returns the peer's ut_metadata id, the
// metadata size it announced and its client name.
func (f *fetcher) handshake(conn net.Conn, br *bufio.Reader, dec *peerwire.Decoder, hs peerwire.Handshake, sent bool) (ext uint8, size int, client string, err error) {
	if !sent {
		if err := peerwire.WriteHandshake(conn, hs); err != nil {
			return 0, 0, "", failure("failed the handshake", fmt.Errorf("sending handshake: %w", err))
		}
	}
	h, err := peerwire.ReadHandshake(br)
	if err != nil {
		return 0, 0, "", failure("failed the handshake", fmt.Errorf("reading handshake: %w", err))
	}
	if h.InfoHash != f.infoHash {
		return 0, 0, "", failure("failed the handshake", fmt.Errorf("peer answered with info-hash %x", h.InfoHash))
	}
	client = peerwire.ClientName(h.PeerID)
	if !h.Reserved.SupportsExtended() {
		return 0, 0, client, failure("lacked ut_metadata", fmt.Errorf("no extension protocol bit in handshake: %w", errNoExtension))
	}
	ours, err := peerwire.ExtHandshake{
		M:      map[string]int{ExtensionName: ourExtID},
		Port:   f.cfg.Port,
		Client: peerwire.ClientVersion,
	}.Message()
	if err != nil {
		return 0, 0, client, err
	}
	w := peerwire.NewWriter(conn)
	if err := w.WriteMessage(ours); err != nil {
		return 0, 0, client, failure("failed the handshake", fmt.Errorf("sending extension handshake: %w", err))
	}
	if err := w.Flush(); err != nil {
		return 0, 0, client, failure("failed the handshake", fmt.Errorf("sending extension handshake: %w", err))
	}
	for {
		m, err := dec.Next()
		if err != nil {
			return 0, 0, client, failure("failed the handshake", fmt.Errorf("waiting for extension handshake: %w", err))
		}
		if m.ID == peerwire.Extended && m.ExtendedID == 0 {
			x, err := peerwire.ParseExtHandshake(m.Payload)
			if err != nil {
				return 0, 0, client, failure("failed the handshake", err)
			}
			if x.Client != "" {
				client = x.Client
			}
			ext, size, err := f.checkExtHandshake(x)
			return ext, size, client, err
		}
	}
}

// checkExtHandshake returns the peer's ut_metadata id and the metadata
// size it announced, or why the peer cannot serve the metadata.
func (f *fetcher) checkExtHandshake(x peerwire.ExtHandshake) (uint8, int, error) {
	id, ok := x.ID(ExtensionName)
	if !ok {
		return 0, 0, failure("lacked ut_metadata", fmt.Errorf("extension handshake without m.%s: %w", ExtensionName, errNoExtension))
	}
	switch size := x.MetadataSize; {
	case size < 0 && size != -1 || size == 0:
		return 0, 0, failure("announced a bad size", fmt.Errorf("extension handshake: metadata_size %d", size))
	case size == -1:
		return 0, 0, failure("lacked ut_metadata", fmt.Errorf("extension handshake without an integer metadata_size: %w", errNoExtension))
	case size > int64(f.cfg.MaxSize):
		return 0, 0, failure("announced a bad size", fmt.Errorf("extension handshake: metadata_size %d above the limit of %d", size, f.cfg.MaxSize))
	default:
		return id, int(size), nil
	}
}

// writeLoop sends what the Fetch goroutine and the reader queue on out,
// batching what is queued together, plus keep-alives while idle. A failed
// write closes the connection, which ends the reader too.
func writeLoop(ctx context.Context, conn net.Conn, out <-chan peerwire.Message, timeout time.Duration) {
	w := peerwire.NewWriter(conn)
	keepAlive := time.NewTicker(keepAliveInterval)
	defer keepAlive.Stop()
	for {
		var m peerwire.Message
		select {
		case <-ctx.Done():
			return
		case m = <-out:
		case <-keepAlive.C:
			m = peerwire.Message{KeepAlive: true}
		}
		if err := sendQueued(conn, w, m, out, timeout); err != nil {
			conn.Close()
			return
		}
	}
}

// sendQueued writes m and whatever else is already queued, then flushes.
func sendQueued(conn net.Conn, w *peerwire.Writer, m peerwire.Message, out <-chan peerwire.Message, timeout time.Duration) error {
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	for {
		if err := w.WriteMessage(m); err != nil {
			return err
		}
		select {
		case m = <-out:
		default:
			return w.Flush()
		}
	}
}
