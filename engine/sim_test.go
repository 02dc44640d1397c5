package engine

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sowerbt/sower/internal/memconn"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

// The tests in this file run swarms of engine torrents on an in-memory
// network (internal/memconn) inside a testing/synctest bubble. Time is
// virtual: choking rounds, request and peer timeouts and rate limits pass
// at CPU speed, and outcomes do not depend on the machine's load. They
// never sleep or poll: they wait on the engine's own signals (Done) and on
// events the test's fake peers send.

// simLog turns on the nodes' debug logs (with -v): a 20-peer swarm logs
// tens of thousands of lines, which take longer than the swarm itself.
var simLog = flag.Bool("sim.log", false, "log the simulated swarms' debug messages (with -v)")

// simLatency is the one-way delay of the simulated network.
const simLatency = 5 * time.Millisecond

// sim is a swarm on an in-memory network; make it inside synctest.Test.
type sim struct {
	t      *testing.T
	tt     *testTorrent
	net    *memconn.Network
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	hosts  int
	// closers run once every torrent has stopped (storages to close).
	closers []func() error
}

// newSim makes an empty swarm for tt. Its context ends after limit of
// virtual time, so a stuck swarm fails rather than runs forever. At the
// test's end every torrent is stopped and no goroutine the swarm started
// may remain.
func newSim(t *testing.T, tt *testTorrent, limit time.Duration) *sim {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	s := &sim{
		t:      t,
		tt:     tt,
		net:    &memconn.Network{Latency: simLatency},
		ctx:    ctx,
		cancel: cancel,
	}
	t.Cleanup(s.stop)
	return s
}

// stop ends the swarm and checks that it left no goroutine behind.
func (s *sim) stop() {
	s.cancel()
	s.wg.Wait()
	for _, c := range s.closers {
		if err := c(); err != nil {
			s.t.Error(err)
		}
	}
	synctest.Wait() // goroutines that reported done have exited
	if left := bubbleGoroutines(); len(left) > 0 {
		s.t.Errorf("%d goroutines left after the swarm stopped:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// bubbleGoroutines returns the stacks of the goroutines in the caller's
// synctest bubble, the caller excepted. (runtime.NumGoroutine would also
// count goroutines outside the bubble, such as one running finalizers.)
func bubbleGoroutines() []string {
	buf := make([]byte, 1<<20)
	self := string(buf[:runtime.Stack(buf, false)])
	header, _, _ := strings.Cut(self, "\n")
	_, bubble, ok := strings.Cut(header, ", synctest bubble ")
	if !ok {
		panic("bubbleGoroutines called outside a synctest bubble")
	}
	bubble, _, _ = strings.Cut(bubble, "]")
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var left []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		h, rest, _ := strings.Cut(g, "\n")
		if h == header || !strings.Contains(h, ", synctest bubble "+bubble+"]") {
			continue
		}
		if strings.HasPrefix(rest, "internal/synctest.") || strings.HasPrefix(rest, "testing/synctest.") {
			continue // the bubble's own
		}
		left = append(left, g)
	}
	return left
}

// simNode is one torrent of the swarm, with its own host address.
type simNode struct {
	t      *Torrent
	store  storage.Storage
	addr   netip.AddrPort
	cancel context.CancelFunc // stops this node only
	ran    chan struct{}      // closed when its Run returned
}

// nodeOpts are the less common settings of a node.
type nodeOpts struct {
	// wrap, if set, wraps each of the node's connections, dialled or
	// accepted, before the engine sees it.
	wrap func(net.Conn) net.Conn
	// store, if set, is a leecher's storage instead of a new Memory.
	store storage.Storage
	// wrapDial, if set, wraps the node's dialling on the network.
	wrapDial func(dialFunc) dialFunc
}

// dialFunc is the form of Config.Dial.
type dialFunc = func(ctx context.Context, to netip.AddrPort) (net.Conn, error)

// nextHost returns a fresh address, one host per node or fake peer.
func (s *sim) nextHost() netip.AddrPort {
	s.hosts++
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(s.hosts >> 8), byte(s.hosts)}), 6881)
}

// node starts a torrent: a seed holding all the data, or an empty
// leecher. It listens and routes incoming connections as a session would:
// the first part of the handshake, then AcceptIncoming.
func (s *sim) node(seed bool, cfg Config, opts nodeOpts) *simNode {
	s.t.Helper()
	addr := s.nextHost()
	ln, err := s.net.Listen(addr)
	if err != nil {
		s.t.Fatal(err)
	}
	var store storage.Storage = storage.NewMemory(s.tt.layout)
	switch {
	case seed:
		store = s.tt.seedStore(s.t)
		cfg.Have = s.tt.full()
	case opts.store != nil:
		store = opts.store
	}
	wrap := opts.wrap
	if wrap == nil {
		wrap = func(c net.Conn) net.Conn { return c }
	}
	dial := s.net.Dialer(addr.Addr())
	if opts.wrapDial != nil {
		dial = opts.wrapDial(dial)
	}
	cfg.Dial = func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
		c, err := dial(ctx, to)
		if err != nil {
			return nil, err
		}
		return wrap(c), nil
	}
	cfg.Port = addr.Port()
	cfg.Logger = slog.New(slog.DiscardHandler)
	if *simLog {
		cfg.Logger = testLogger(s.t)
	}
	tor, err := New(s.tt.info, s.tt.hash, s.tt.layout, store, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	n := &simNode{t: tor, store: store, addr: addr, cancel: cancel, ran: make(chan struct{})}
	context.AfterFunc(ctx, func() { ln.Close() })
	s.wg.Go(func() {
		defer close(n.ran)
		if err := tor.Run(ctx); err != nil {
			s.t.Errorf("node %v: %v", addr, err)
		}
	})
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.route(ctx, tor, wrap(c)) })
		}
	})
	return n
}

// route reads the start of an incoming handshake and hands the
// connection to the torrent it names.
func (s *sim) route(ctx context.Context, tor *Torrent, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	reserved, ih, err := peerwire.ReadHandshakeStart(c)
	if err != nil || ih != tor.InfoHash() {
		c.Close()
		return
	}
	tor.AcceptIncoming(ctx, c, reserved)
}

// checkData fails unless n holds exactly the torrent's data.
func (s *sim) checkData(n *simNode) {
	s.t.Helper()
	buf := make([]byte, 64<<10)
	for off := 0; off < len(s.tt.data); off += len(buf) {
		want := s.tt.data[off:min(off+len(buf), len(s.tt.data))]
		if _, err := n.store.ReadAt(buf[:len(want)], int64(off)); err != nil || !bytes.Equal(buf[:len(want)], want) {
			s.t.Fatalf("node %v: data at %d differs from the seed's (%v)", n.addr, off, err)
		}
	}
}

// waitDone waits until n has every wanted piece, or the swarm's time is up.
func (s *sim) waitDone(n *simNode) {
	s.t.Helper()
	select {
	case <-n.t.Done():
	case <-s.ctx.Done():
		s.t.Fatalf("node %v did not complete: %+v", n.addr, n.t.Stats())
	}
}

// meshed tells every node about every other.
func meshed(nodes ...*simNode) {
	for _, n := range nodes {
		for _, o := range nodes {
			if o != n {
				n.t.AddPeers(o.addr)
			}
		}
	}
}

// TestSimSwarm20: one seed and 19 leechers, each uploading at most
// 1 MB/s, all told about each other; every leecher ends with the seed's
// bytes, no piece fails its check, and the leechers trade among
// themselves rather than each fetching a copy from the seed.
func TestSimSwarm20(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{3 << 19, 1<<19 + 12345}, 32<<10)
		s := newSim(t, tt, time.Hour)
		start := time.Now()
		nodes := []*simNode{s.node(true, Config{UploadLimit: NewLimiter(1_000_000)}, nodeOpts{})}
		for range 19 {
			nodes = append(nodes, s.node(false, Config{UploadLimit: NewLimiter(1_000_000)}, nodeOpts{}))
		}
		meshed(nodes...)
		for _, n := range nodes[1:] {
			s.waitDone(n)
		}
		elapsed := time.Since(start)
		var fromPeers int64
		for _, n := range nodes[1:] {
			s.checkData(n)
			st := n.t.Stats()
			if !st.Complete || st.Left != 0 || st.HashFailures != 0 {
				t.Fatalf("node %v after completion: %+v", n.addr, st)
			}
			fromPeers += st.Uploaded
		}
		copies := float64(nodes[0].t.Stats().Uploaded) / float64(len(tt.data))
		t.Logf("virtual time %v; the seed uploaded %.2f copies, the leechers %.2f", elapsed, copies, float64(fromPeers)/float64(len(tt.data)))
		if copies > 4 {
			t.Fatalf("the seed uploaded %.2f copies for 19 leechers: they are not trading", copies)
		}
	})
}

// fake starts a scripted peer at a fresh host: it accepts connections,
// answers the handshake for the torrent and runs serve on each; the
// connection is closed when serve returns or the swarm stops.
func (s *sim) fake(serve func(c net.Conn)) netip.AddrPort {
	s.t.Helper()
	addr := s.nextHost()
	ln, err := s.net.Listen(addr)
	if err != nil {
		s.t.Fatal(err)
	}
	context.AfterFunc(s.ctx, func() { ln.Close() })
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				stop := context.AfterFunc(s.ctx, func() { c.Close() })
				defer stop()
				h, err := peerwire.ReadHandshake(c)
				if err != nil || h.InfoHash != s.tt.hash {
					return
				}
				if peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: h.InfoHash, PeerID: peerwire.NewPeerID()}) != nil {
					return
				}
				serve(c)
			})
		}
	})
	return addr
}

// fakeDial starts a scripted peer at a fresh host that dials each target,
// handshakes and runs serve on the connection.
func (s *sim) fakeDial(serve func(c net.Conn), targets ...netip.AddrPort) {
	s.t.Helper()
	from := s.nextHost().Addr()
	for _, to := range targets {
		c, err := s.net.Dial(s.ctx, from, to)
		if err != nil {
			s.t.Fatal(err)
		}
		s.wg.Go(func() {
			defer c.Close()
			stop := context.AfterFunc(s.ctx, func() { c.Close() })
			defer stop()
			if peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: s.tt.hash, PeerID: peerwire.NewPeerID()}) != nil {
				return
			}
			if _, err := peerwire.ReadHandshake(c); err != nil {
				return
			}
			serve(c)
		})
	}
}

// decoder reads the torrent's messages from a fake peer's connection.
func (s *sim) decoder(c net.Conn) *peerwire.Decoder {
	return peerwire.NewDecoder(c, peerwire.Limits{NumPieces: s.tt.info.NumPieces(), PieceLength: s.tt.info.PieceLength, TotalLength: s.tt.info.TotalLength()})
}

// block returns the torrent's bytes that a request asks for.
func (s *sim) block(m peerwire.Message) []byte {
	off := int64(m.Index)*s.tt.info.PieceLength + int64(m.Begin)
	return s.tt.data[off : off+int64(m.Length)]
}

// send writes messages to a fake peer's connection.
func send(c net.Conn, msgs ...peerwire.Message) error {
	var b []byte
	for _, m := range msgs {
		b = m.AppendTo(b)
	}
	_, err := c.Write(b)
	return err
}
