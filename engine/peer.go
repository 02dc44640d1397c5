package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

// blockKey names one block: piece index in the high half, offset in the low.
type blockKey uint64

func makeKey(index, begin uint32) blockKey { return blockKey(uint64(index)<<32 | uint64(begin)) }
func (k blockKey) index() uint32           { return uint32(k >> 32) }
func (k blockKey) begin() uint32           { return uint32(k) }

// outItem is one queued outgoing message. Requests for block data are
// queued as upload items and read from storage by the writer goroutine, so
// disk reads never run on the torrent's owner goroutine.
type outItem struct {
	msg    peerwire.Message
	upload bool // msg is a Request from the peer: answer with a Piece read from storage
	lazy   bool // may wait up to lazyDelay for company (see sendLazy)
	// answer: msg (a reject) answers one of the peer's requests and
	// counts in peer.uploads until it is written.
	answer bool
}

// cost is what an item holds in memory while queued: block data is read
// from storage only when sent, so an upload costs its descriptor.
func (it outItem) cost() int { return outItemSize + len(it.msg.Payload) }

// outItemSize approximates the size of an outItem.
const outItemSize = 64

// maxQueuedBytes bounds the memory of one peer's queued output. The
// writer drains the queue into the socket; a peer that stops reading
// stops it in Write while the owner keeps queueing (haves, rejects,
// extension messages), so past this bound the peer is dropped.
const maxQueuedBytes = 4 << 20

// errQueueFull is why a peer that does not read its socket is dropped.
var errQueueFull = fmt.Errorf("peer does not read: more than %d bytes of output queued", maxQueuedBytes)

// peer is one connection. Fields under "owner" are touched only by the
// torrent's owner goroutine; the outgoing queue is shared with the writer
// goroutine under mu; counters are atomic.
type peer struct {
	conn     net.Conn
	addr     netip.AddrPort
	id       [20]byte
	reserved peerwire.Reserved
	outgoing bool
	client   string
	// encryption is how the connection is protected (EncryptionNone,
	// EncryptionRC4 or EncryptionObfuscated).
	encryption string
	// prefersEncryption: the peer's extension handshake said "e": 1.
	prefersEncryption bool

	// Shared with the writer goroutine.
	mu       sync.Mutex
	queue    []outItem
	queued   int           // cost of queue's items
	overflow bool          // the queue went over maxQueuedBytes: the peer is being dropped
	notify   chan struct{} // capacity 1: queue became non-empty
	cancel   context.CancelFunc
	closed   chan struct{} // closed when both goroutines have stopped
	uploaded atomic.Int64  // payload bytes sent
	// uploads counts the peer's requests whose answer (block or reject)
	// is queued and not yet written; the owner adds, the writer (or a
	// cancel) subtracts.
	uploads atomic.Int32

	// Owner state.
	has            bitfield.Bitfield
	seed           bool // has every piece (have-all or full bitfield)
	amChoking      bool
	amInterested   bool
	peerChoking    bool
	peerInterested bool
	pending        map[blockKey]time.Time // our requests to the peer
	cancelled      map[blockKey]struct{}  // cancelled requests whose block may still arrive
	maxRequests    int                    // peer's reqq, or a default
	depth          int                    // our current request queue depth target
	downloaded     int64                  // payload bytes received (owner)
	rate           rateMeter              // download rate from this peer
	upRate         rateMeter
	lastPiece      time.Time // last block received
	connected      time.Time
	hashFails      int
	snubbed        bool      // sent us nothing for snubAfter while we were interested
	interestedAt   time.Time // when we last became interested, for snubbing
	unchokedAt     time.Time // when we last unchoked the peer (zero: choked)
	lastUnchoked   time.Time // when the peer last held an upload slot, for seed round robin
	optimistic     bool      // holds the optimistic unchoke slot
	offered        int       // super-seeding: the piece offered to this peer, or -1
	offeredAt      time.Time
	listenPort     uint16                  // from the extension handshake
	extIDs         map[string]uint8        // the peer's ids for extensions we speak
	pexSent        map[netip.AddrPort]bool // addresses we told the peer about
	pexAt          time.Time
	lastDownloaded int64 // p.downloaded at depthAt, for the queue depth
	depthAt        time.Time
	refused        map[int]time.Time // pieces the peer rejected, when (see dedup.go)
	dupRefused     map[int]time.Time // pieces we refused the peer as duplicates, since when
}

func (p *peer) String() string { return p.addr.String() }

func (p *peer) fast() bool { return p.reserved.SupportsFast() }

// send queues a message without blocking; the writer goroutine sends it.
func (p *peer) send(m peerwire.Message) { p.enqueue(outItem{msg: m}) }

// sendLazy queues a message that may wait up to lazyDelay to share a
// write with others. Have messages go to every peer for every piece: in a
// busy swarm, one write (and one wake-up on both sides) per have costs
// more CPU than the data, and a few milliseconds of delay cost nothing.
func (p *peer) sendLazy(m peerwire.Message) { p.enqueue(outItem{msg: m, lazy: true}) }

// lazyDelay bounds how long a lazy message waits for company.
const lazyDelay = 5 * time.Millisecond

func (p *peer) enqueue(items ...outItem) {
	if len(items) == 0 {
		return
	}
	n := 0
	for _, it := range items {
		n += it.cost()
	}
	p.mu.Lock()
	if p.overflow {
		p.mu.Unlock()
		return
	}
	if p.queued+n > maxQueuedBytes {
		// Closing the connection stops the peer's goroutines; runPeer
		// then reports errQueueFull.
		p.overflow = true
		p.mu.Unlock()
		p.conn.Close()
		return
	}
	p.queued += n
	p.queue = append(p.queue, items...)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// dropUpload removes a queued, not yet sent upload for the block, so a
// cancel from the peer saves the bandwidth. It reports whether one was found.
func (p *peer) dropUpload(index, begin, length uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, it := range p.queue {
		if it.upload && it.msg.Index == index && it.msg.Begin == begin && it.msg.Length == length {
			p.queued -= it.cost()
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			p.uploads.Add(-1)
			return true
		}
	}
	return false
}

// dropAllUploads removes every queued upload (we choked the peer) and returns them.
func (p *peer) dropAllUploads() []peerwire.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var dropped []peerwire.Message
	kept := p.queue[:0]
	for _, it := range p.queue {
		if it.upload {
			dropped = append(dropped, it.msg)
			p.uploads.Add(-1)
			p.queued -= it.cost()
			continue
		}
		kept = append(kept, it)
	}
	clear(p.queue[len(kept):])
	p.queue = kept
	return dropped
}

// event is what peer goroutines tell the owner.
type event struct {
	p     *peer
	batch *msgBatch // messages in arrival order; the owner recycles it
	gone  bool      // the connection ended; err says why
	err   error
}

// msgBatch holds messages that arrived together from one peer. Handing
// them to the owner in one event costs one channel send and at most one
// wake-up for up to maxBatch messages instead of one per message, which
// saves a seed CPU: it gets one request per 16 KiB block, mostly in bursts.
type msgBatch struct{ msgs []inMsg }

// maxBatch is the most messages one event carries.
const maxBatch = 32

// inMsg is one received message. A piece's payload is in block, a copy
// from the torrent's block pool, because the decoder reuses its buffer.
type inMsg struct {
	msg   peerwire.Message
	block []byte
}

func (t *Torrent) getBatch() *msgBatch {
	if b, ok := t.batches.Get().(*msgBatch); ok {
		return b
	}
	return &msgBatch{msgs: make([]inMsg, 0, maxBatch)}
}

func (t *Torrent) putBatch(b *msgBatch) {
	clear(b.msgs)
	b.msgs = b.msgs[:0]
	t.batches.Put(b)
}

// readLoop decodes messages and hands them to the owner, together when
// several are already buffered.
func (t *Torrent) readLoop(ctx context.Context, p *peer, dec *peerwire.Decoder) error {
	for {
		if err := p.conn.SetReadDeadline(time.Now().Add(t.cfg.PeerTimeout)); err != nil {
			return err
		}
		m, err := dec.Next()
		if err != nil {
			return err
		}
		b := t.getBatch()
		for {
			if !m.KeepAlive {
				b.msgs = append(b.msgs, t.received(m))
			}
			if len(b.msgs) == maxBatch || !dec.Ready() {
				break
			}
			if m, err = dec.Next(); err != nil {
				break // after the messages before it
			}
		}
		if len(b.msgs) > 0 {
			select {
			case t.events <- event{p: p, batch: b}:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			t.putBatch(b)
		}
		if err != nil {
			return err
		}
	}
}

// received copies what m holds in the decoder's buffer out of it.
func (t *Torrent) received(m peerwire.Message) inMsg {
	in := inMsg{msg: m}
	switch m.ID {
	case peerwire.Piece:
		in.block = t.blocks.get(len(m.Payload))
		copy(in.block, m.Payload)
		in.msg.Payload = nil
	case peerwire.Bitfield, peerwire.Extended:
		in.msg.Payload = append([]byte(nil), m.Payload...)
	}
	return in
}

// writeLoop sends queued messages, reading uploaded blocks from storage,
// and a keep-alive when idle. Messages and blocks are appended to one
// buffer that goes to the socket in writeChunk pieces, so a block is read
// from storage straight into the bytes that are sent: no second copy
// through a bufio.Writer, and few write calls.
func (t *Torrent) writeLoop(ctx context.Context, p *peer) error {
	var out []byte
	var batch []outItem
	var bufs [][]byte // appendBlocks' scratch
	keepAlive := time.NewTimer(t.cfg.KeepAlive)
	defer keepAlive.Stop()
	lazy := time.NewTimer(time.Hour)
	lazy.Stop()
	defer lazy.Stop()
	lazyArmed := false
	flush := func() error {
		if lazyArmed {
			lazy.Stop()
			lazyArmed = false
		}
		if len(out) == 0 {
			return nil
		}
		if err := p.conn.SetWriteDeadline(time.Now().Add(t.cfg.PeerTimeout)); err != nil {
			return err
		}
		// out is ours and refilled only after this: an encrypting
		// connection may overwrite it rather than copy it.
		_, err := writeInPlace(p.conn, out)
		out = out[:0]
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-keepAlive.C:
			if len(out) == 0 {
				// Idle for a while: give back the upload buffer, up to
				// writeChunk, rather than hold it for every quiet peer.
				out = nil
			}
			batch = append(batch[:0], outItem{msg: peerwire.Message{KeepAlive: true}})
		case <-lazy.C:
			lazyArmed = false
			if err := flush(); err != nil {
				return err
			}
			continue
		case <-p.notify:
			p.mu.Lock()
			batch = append(batch[:0], p.queue...)
			clear(p.queue)
			p.queue = p.queue[:0]
			p.queued = 0
			p.mu.Unlock()
		}
		urgent := false
		for i := 0; i < len(batch); {
			it := batch[i]
			urgent = urgent || !it.lazy
			if !it.upload {
				out = it.msg.AppendTo(out)
				if it.answer {
					p.uploads.Add(-1)
				}
				i++
				continue
			}
			run := t.adjacentUploads(batch[i:])
			var err error
			out, bufs, err = t.appendBlocks(out, run, bufs)
			if err != nil {
				return fmt.Errorf("reading block for upload: %w", err)
			}
			for _, it := range run {
				p.uploads.Add(-1)
				p.uploaded.Add(int64(it.msg.Length))
				t.uploaded.Add(int64(it.msg.Length))
			}
			i += len(run)
			if len(out) >= writeChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		clear(batch)
		p.mu.Lock()
		more := len(p.queue) > 0
		p.mu.Unlock()
		switch {
		case more:
		case urgent:
			if err := flush(); err != nil {
				return err
			}
		case !lazyArmed && len(out) > 0:
			lazy.Reset(lazyDelay)
			lazyArmed = true
		}
		keepAlive.Reset(t.cfg.KeepAlive)
	}
}

// writeChunk is how many bytes of queued blocks the writer gathers before
// a write call. Each write to a fast peer costs a system call, a pass
// through TCP and a wake-up of the reader on the other side, so fewer,
// larger writes save CPU (512 KiB is where the saving stopped growing;
// docs/benchmarks.md). The upload limiter cuts writes to its burst,
// so a limit stays smooth, and an idle peer's buffer is given back.
const writeChunk = 512 << 10

// adjacentUploads returns the uploads at the start of items that follow
// each other in the torrent's byte space (a peer asks for a piece's
// blocks in order), up to writeChunk bytes; at least the first.
func (t *Torrent) adjacentUploads(items []outItem) []outItem {
	end := t.blockOffset(items[0].msg) + int64(items[0].msg.Length)
	size := int64(items[0].msg.Length)
	n := 1
	for ; n < len(items); n++ {
		m := items[n].msg
		if !items[n].upload || t.blockOffset(m) != end || size+int64(m.Length) > writeChunk {
			break
		}
		end += int64(m.Length)
		size += int64(m.Length)
	}
	return items[:n]
}

func (t *Torrent) blockOffset(m peerwire.Message) int64 {
	return int64(m.Index)*t.info.PieceLength + int64(m.Begin)
}

// appendBlocks appends a piece message for each of the adjacent requested
// blocks in run and reads their data straight into the buffer, all with
// one vectored read: one system call for a run of blocks instead of one
// per 16 KiB. bufs is scratch space, returned for reuse.
func (t *Torrent) appendBlocks(b []byte, run []outItem, bufs [][]byte) ([]byte, [][]byte, error) {
	need := 0
	for _, it := range run {
		need += pieceHeaderLen + int(it.msg.Length)
	}
	// One grow up front, so the slices taken below stay valid.
	b = slices.Grow(b, need)
	bufs = bufs[:0]
	for _, it := range run {
		req := it.msg
		start := len(b)
		b = peerwire.Message{ID: peerwire.Piece, Index: req.Index, Begin: req.Begin}.AppendTo(b)
		// AppendTo wrote the length for an empty payload; the data
		// follows.
		binary.BigEndian.PutUint32(b[start:], 9+req.Length)
		n := len(b)
		b = b[:n+int(req.Length)]
		bufs = append(bufs, b[n:])
	}
	if _, err := storage.ReadVec(t.store, bufs, t.blockOffset(run[0].msg)); err != nil {
		return nil, bufs, err
	}
	clear(bufs) // do not pin the buffer through the scratch slice
	return b, bufs, nil
}

// pieceHeaderLen is the size of a piece message without its data: length,
// id, index and begin.
const pieceHeaderLen = 4 + 1 + 4 + 4

// runPeer owns a connected peer's goroutines and reports when they stop.
func (t *Torrent) runPeer(ctx context.Context, p *peer, dec *peerwire.Decoder) {
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- t.readLoop(ctx, p, dec) }()
	go func() { defer wg.Done(); errc <- t.writeLoop(ctx, p) }()
	err := <-errc
	p.cancel()
	p.conn.Close()
	wg.Wait()
	close(p.closed)
	p.mu.Lock()
	if p.overflow {
		err = errQueueFull
	}
	p.mu.Unlock()
	if errors.Is(err, io.EOF) {
		err = io.EOF
	}
	select {
	case t.events <- event{p: p, gone: true, err: err}:
	case <-t.stopped:
	}
}
