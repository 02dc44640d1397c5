package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

// countingConn counts the bytes read from a connection and calls at once
// when they pass a threshold, and closed when the connection is closed.
type countingConn struct {
	net.Conn
	mu        sync.Mutex
	n         int64
	threshold int64
	at        func()
	closed    func()
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	before := c.n
	c.n += int64(n)
	fire := c.at != nil && before < c.threshold && c.n >= c.threshold
	c.mu.Unlock()
	if fire {
		c.at()
	}
	return n, err
}

func (c *countingConn) Close() error {
	if c.closed != nil {
		c.closed()
	}
	return c.Conn.Close()
}

// TestSimPeerDisappears: a leecher downloads from a seed that goes away
// once it has sent a quarter of the torrent, either closing its
// connections (the program stopped) or without a word (the machine
// crashed, the cable was pulled: nothing more arrives, not even a close).
// The leecher notices by itself (at once, or when its timeouts expire),
// drops the peer, and completes byte-identical from another seed that
// is only offered to it then.
func TestSimPeerDisappears(t *testing.T) {
	for _, silent := range []bool{false, true} {
		name := "closes"
		if silent {
			name = "vanishes"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTestTorrent(t, []int64{2 << 20}, 32<<10)
				s := newSim(t, tt, time.Hour)
				a := s.node(true, Config{UploadLimit: NewLimiter(500_000)}, nodeOpts{})
				gone := make(chan struct{})    // a went away
				dropped := make(chan struct{}) // the leecher closed its connection to a
				var once, closeOnce sync.Once
				disappear := func() {
					once.Do(func() {
						if silent {
							s.net.Vanish(a.addr.Addr())
						} else {
							a.cancel()
						}
						close(gone)
					})
				}
				wrap := func(c net.Conn) net.Conn {
					if c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr() != a.addr.Addr() {
						return c
					}
					return &countingConn{Conn: c, threshold: int64(len(tt.data) / 4), at: disappear, closed: func() {
						closeOnce.Do(func() { close(dropped) })
					}}
				}
				start := time.Now()
				leech := s.node(false, Config{}, nodeOpts{wrap: wrap})
				leech.t.AddPeers(a.addr)
				select {
				case <-dropped:
				case <-s.ctx.Done():
					t.Fatalf("the leecher never dropped the seed that went away: %+v", leech.t.Stats())
				}
				select {
				case <-gone:
				default:
					t.Fatal("the connection ended before the seed went away")
				}
				goneAt := time.Now()
				synctest.Wait() // the owner has dropped the peer
				st := leech.t.Stats()
				if st.Complete || st.Downloaded < int64(len(tt.data)/4) || st.HashFailures != 0 {
					t.Fatalf("leecher when the seed went away: %+v", st)
				}
				for _, p := range st.Peerlist {
					if p.Addr.Addr() == a.addr.Addr() {
						t.Fatalf("still connected to the seed that went away: %+v", p)
					}
				}
				b := s.node(true, Config{UploadLimit: NewLimiter(500_000)}, nodeOpts{})
				leech.t.AddPeers(b.addr)
				s.waitDone(leech)
				s.checkData(leech)
				t.Logf("dropped the seed that went away after %v; completed %v later, having %d bytes from it", goneAt.Sub(start), time.Since(goneAt), st.Downloaded)
			})
		})
	}
}

// liarServe is a fake seed that speaks the protocol correctly but flips
// a byte in every block it sends. sentPiece is closed once it has sent
// every block of some piece, so a hash check is certain to fail.
func (s *sim) liar(sentPiece chan struct{}) netip.AddrPort {
	var once sync.Once
	return s.fake(func(c net.Conn) {
		if send(c, peerwire.Message{ID: peerwire.Bitfield, Payload: s.tt.full().Bytes()}, peerwire.Message{ID: peerwire.Unchoke}) != nil {
			return
		}
		dec := s.decoder(c)
		sent := map[uint32]int64{}
		for {
			m, err := dec.Next()
			if err != nil {
				return
			}
			if m.ID != peerwire.Request {
				continue
			}
			blk := append([]byte(nil), s.block(m)...)
			blk[0] ^= 0xff
			if send(c, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Payload: blk}) != nil {
				return
			}
			if sent[m.Index] += int64(m.Length); sent[m.Index] == s.tt.info.PieceSize(int(m.Index)) && sentPiece != nil {
				once.Do(func() { close(sentPiece) })
			}
		}
	})
}

// TestSimCorruptPeer: a peer whose pieces all fail their hash check is
// banned, the waste is counted, and the pieces come again from an honest
// seed; it is not dialled again.
func TestSimCorruptPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{1 << 20}, 32<<10)
		s := newSim(t, tt, time.Hour)
		sentPiece := make(chan struct{})
		bad := s.liar(sentPiece)
		leech := s.node(false, Config{}, nodeOpts{})
		leech.t.AddPeers(bad)
		// The liar alone first, so the leecher certainly gets its bad pieces.
		select {
		case <-sentPiece:
		case <-s.ctx.Done():
			t.Fatal("the liar was never asked for a whole piece")
		}
		seed := s.node(true, Config{}, nodeOpts{})
		leech.t.AddPeers(seed.addr, bad)
		s.waitDone(leech)
		s.checkData(leech)
		st := leech.t.Stats()
		if st.HashFailures == 0 || st.Wasted < tt.info.PieceLength || st.Banned == 0 {
			t.Fatalf("the liar was not caught: %+v", st)
		}
		for _, p := range st.Peerlist {
			if p.Addr.Addr() == bad.Addr() {
				t.Fatalf("the liar is still connected: %+v", p)
			}
		}
	})
}

// TestSimPoisonInMixedPiece: a liar that corrupts blocks while an honest
// seed sends the others is identified by comparing the failed copy of a
// piece with the good one, and banned.
func TestSimPoisonInMixedPiece(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{2 << 20}, 256<<10)
		s := newSim(t, tt, time.Hour)
		bad := s.liar(nil)
		seed := s.node(true, Config{}, nodeOpts{})
		leech := s.node(false, Config{}, nodeOpts{})
		leech.t.AddPeers(bad, seed.addr)
		s.waitDone(leech)
		s.checkData(leech)
		st := leech.t.Stats()
		if st.HashFailures == 0 || st.Banned == 0 {
			t.Fatalf("the liar was not caught: %+v", st)
		}
		for _, p := range st.Peerlist {
			if p.Addr.Addr() == bad.Addr() {
				t.Fatalf("the liar is still connected: %+v", p)
			}
		}
	})
}

// TestSimEndGame: a peer that takes requests and never answers holds
// blocks; end game fetches them from an honest seed that turns up later,
// long before the request timeout would hand them back.
func TestSimEndGame(t *testing.T) {
	for name, policy := range map[string]EndGamePolicy{"all-requested": EndGameAllRequested, "all-started": EndGameAllStarted} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTestTorrent(t, []int64{1 << 20}, 64<<10)
				s := newSim(t, tt, time.Hour)
				asked := make(chan struct{})
				var once sync.Once
				hole := s.fake(func(c net.Conn) {
					if send(c, peerwire.Message{ID: peerwire.Bitfield, Payload: tt.full().Bytes()}, peerwire.Message{ID: peerwire.Unchoke}) != nil {
						return
					}
					dec := s.decoder(c)
					for {
						m, err := dec.Next()
						if err != nil {
							return
						}
						if m.ID == peerwire.Request {
							once.Do(func() { close(asked) })
						}
					}
				})
				leech := s.node(false, Config{EndGame: policy}, nodeOpts{})
				leech.t.AddPeers(hole)
				select {
				case <-asked:
				case <-s.ctx.Done():
					t.Fatal("the black hole was never asked for a block")
				}
				// Let it swallow a full pipeline of requests.
				synctest.Wait()
				start := time.Now()
				seed := s.node(true, Config{}, nodeOpts{})
				leech.t.AddPeers(seed.addr)
				s.waitDone(leech)
				s.checkData(leech)
				if took := time.Since(start); took >= requestTimeout {
					t.Fatalf("completed %v after the seed came, not before the %v request timeout: end game did not step in", took, requestTimeout)
				}
			})
		})
	}
}

// TestSimDiskStorage: leechers that write to files in a folder (real
// file I/O inside the bubble: the hash workers' writes are system calls,
// which synctest waits out) end with files byte-identical to the seed's
// data.
func TestSimDiskStorage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{300_000, 0, 700_001, 150_000}, 32<<10)
		s := newSim(t, tt, time.Hour)
		nodes := []*simNode{s.node(true, Config{}, nodeOpts{})}
		var dirs []string
		for range 2 {
			dir := t.TempDir()
			store, err := storage.OpenDir(dir, tt.layout, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.closers = append(s.closers, store.Close)
			dirs = append(dirs, dir)
			nodes = append(nodes, s.node(false, Config{}, nodeOpts{store: store}))
		}
		meshed(nodes...)
		for i, n := range nodes[1:] {
			s.waitDone(n)
			s.checkData(n)
			var off int64
			for _, f := range tt.layout.Files() {
				got, err := os.ReadFile(filepath.Join(dirs[i], filepath.FromSlash(f.Path)))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.data[off:off+f.Length]) {
					t.Fatalf("%s in %s differs from the seed's", f.Path, dirs[i])
				}
				off += f.Length
			}
		}
	})
}

// TestSimDialTimeout: a dial to a host that never answers is given up
// after Config.DialTimeout, whatever the dial hook (its context ends
// then), and the download goes on with the peers that do answer.
func TestSimDialTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{1 << 20}, 32<<10)
		s := newSim(t, tt, time.Hour)
		dead := s.nextHost()
		s.net.Vanish(dead.Addr())
		seed := s.node(true, Config{}, nodeOpts{})
		type attempt struct {
			took time.Duration
			err  error
		}
		attempts := make(chan attempt, 64)
		record := func(dial dialFunc) dialFunc {
			return func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
				start := time.Now()
				c, err := dial(ctx, to)
				if to == dead {
					attempts <- attempt{time.Since(start), err}
				}
				return c, err
			}
		}
		const timeout = 7 * time.Second
		leech := s.node(false, Config{DialTimeout: timeout}, nodeOpts{wrapDial: record})
		leech.t.AddPeers(dead, seed.addr)
		s.waitDone(leech)
		s.checkData(leech)
		select {
		case a := <-attempts:
			if a.took != timeout || !errors.Is(a.err, context.DeadlineExceeded) {
				t.Fatalf("the dial to a silent host ended after %v with %v; want %v and a deadline error", a.took, a.err, timeout)
			}
		case <-s.ctx.Done():
			t.Fatal("no dial to the silent host ended: dials are not bounded by DialTimeout")
		}
	})
}

// pipeAddr is an address that is not an IP address and port.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// noIPConn is a connection whose remote address is not an IP address.
type noIPConn struct{ net.Conn }

func (noIPConn) RemoteAddr() net.Addr { return pipeAddr{} }

// TestSimIncomingWithoutIP: an incoming connection whose remote address
// is not an IP address and port (so it could not be told apart, banned
// or announced) completes the handshake and is then closed, and the
// torrent goes on serving others.
func TestSimIncomingWithoutIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{256 << 10}, 32<<10)
		s := newSim(t, tt, time.Hour)
		seed := s.node(true, Config{}, nodeOpts{})
		ours, theirs := s.net.Pipe(s.nextHost(), seed.addr)
		defer ours.Close()
		s.wg.Go(func() {
			reserved, _, err := peerwire.ReadHandshakeStart(theirs)
			if err != nil {
				t.Error(err)
				theirs.Close()
				return
			}
			seed.t.AcceptIncoming(s.ctx, noIPConn{theirs}, reserved)
		})
		if err := peerwire.WriteHandshake(ours, peerwire.Handshake{InfoHash: tt.hash, PeerID: peerwire.NewPeerID()}); err != nil {
			t.Fatal(err)
		}
		if _, err := peerwire.ReadHandshake(ours); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if n, err := io.Copy(io.Discard, ours); err != nil || n != 0 {
			t.Fatalf("after the handshake: %d bytes, %v; want the connection closed", n, err)
		}
		leech := s.node(false, Config{}, nodeOpts{})
		leech.t.AddPeers(seed.addr)
		s.waitDone(leech)
		s.checkData(leech)
	})
}
