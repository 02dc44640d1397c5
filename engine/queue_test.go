package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/peerwire"
)

// TestPeerThatNeverReads connects to a seed, stays choked, sends requests
// without end and never reads its socket (with a small receive buffer,
// so that the seed's writes stop at once). The seed must hang up: each
// request draws a reject that waits in the seed's queue, and those used
// to pile up without bound (1.97 GB in 14 s).
func TestPeerThatNeverReads(t *testing.T) {
	tt := newTestTorrent(t, []int64{4 << 20}, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	seed := startNode(t, ctx, &wg, tt, tt.seedStore(t), tt.full())

	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.DialContext(ctx, "tcp", seed.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var h peerwire.Handshake
	h.Reserved.SetFast()
	h.InfoHash, h.PeerID = tt.hash, peerwire.NewPeerID()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := peerwire.WriteHandshake(c, h); err != nil {
		t.Fatal(err)
	}
	if _, err := peerwire.ReadHandshake(c); err != nil {
		t.Fatal(err)
	}
	// 64 requests a write, 1 KiB each; a million requests would be 17 MB
	// sent, far past any bound.
	var buf []byte
	for i := range 64 {
		buf = peerwire.Message{ID: peerwire.Request, Index: uint32(i % tt.info.NumPieces()), Begin: 0, Length: 1024}.AppendTo(buf)
	}
	for sent := 0; ; sent += 64 {
		if _, err := c.Write(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("seed neither read nor hung up after %d requests", sent)
			}
			t.Logf("seed hung up after %d requests: %v", sent, err)
			return
		}
		if sent > 1_000_000 {
			t.Fatalf("seed still reading after %d requests, never read by the peer", sent)
		}
	}
}

// TestQueueByteBound fills a peer's output queue past maxQueuedBytes: the
// connection is closed, nothing more is queued, and the peer's end is
// reported as errQueueFull.
func TestQueueByteBound(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	p := &peer{conn: a, notify: make(chan struct{}, 1)}
	have := peerwire.Message{ID: peerwire.Bitfield, Payload: make([]byte, 64<<10)}
	for p.queued+(outItem{msg: have}).cost() <= maxQueuedBytes {
		p.send(have)
	}
	if p.overflow || len(p.queue) == 0 {
		t.Fatalf("overflow %v with %d bytes queued, under the bound", p.overflow, p.queued)
	}
	n := len(p.queue)
	p.send(have)
	if !p.overflow || len(p.queue) != n {
		t.Fatalf("past the bound: overflow %v, %d items queued (was %d)", p.overflow, len(p.queue), n)
	}
	if _, err := a.Write([]byte{0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("connection still open past the bound: write %v", err)
	}
}
