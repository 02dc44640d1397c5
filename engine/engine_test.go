package engine

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

// testTorrent is a multi-file torrent over random data whose pieces cross
// file boundaries.
type testTorrent struct {
	info   *metainfo.Info
	hash   [20]byte
	data   []byte
	layout *storage.Layout
}

func newTestTorrent(t testing.TB, sizes []int64, pieceLen int64) *testTorrent {
	t.Helper()
	var total int64
	info := &metainfo.Info{Name: "swarm", PieceLength: pieceLen}
	for i, s := range sizes {
		info.Files = append(info.Files, metainfo.File{Path: []string{"dir", string(rune('a' + i))}, Length: s})
		total += s
	}
	data := make([]byte, total)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], r.Uint64())
	}
	for off := int64(0); off < total; off += pieceLen {
		info.Pieces = append(info.Pieces, sha1.Sum(data[off:min(off+pieceLen, total)]))
	}
	layout, err := storage.NewLayout(Files(info), pieceLen)
	if err != nil {
		t.Fatal(err)
	}
	return &testTorrent{info: info, hash: sha1.Sum([]byte("test torrent")), data: data, layout: layout}
}

func (tt *testTorrent) seedStore(t testing.TB) storage.Storage {
	s := storage.NewMemory(tt.layout)
	if _, err := s.WriteAt(tt.data, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

func (tt *testTorrent) full() bitfield.Bitfield {
	b := bitfield.New(tt.info.NumPieces())
	b.SetAll()
	return b
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// node is a running Torrent with its own listener.
type node struct {
	t     *Torrent
	ln    *Listener
	store storage.Storage
	addr  netip.AddrPort
}

func startNode(t testing.TB, ctx context.Context, wg *sync.WaitGroup, tt *testTorrent, store storage.Storage, have bitfield.Bitfield) *node {
	t.Helper()
	return startNodeConfig(t, ctx, wg, tt, store, Config{Have: have})
}

// startNodeConfig is startNode with more of the Config; Port and Logger
// are filled in.
func startNodeConfig(t testing.TB, ctx context.Context, wg *sync.WaitGroup, tt *testTorrent, store storage.Storage, cfg Config) *node {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, cfg.Logger = ln.Port(), testLogger(t)
	tor, err := New(tt.info, tt.hash, tt.layout, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln.Add(ctx, tor)
	wg.Add(2)
	go func() { defer wg.Done(); ln.Serve(ctx) }()
	go func() { defer wg.Done(); tor.Run(ctx) }()
	return &node{t: tor, ln: ln, store: store, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ln.Port())}
}

func readAll(t testing.TB, s storage.Storage, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := s.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func waitDone(t testing.TB, ctx context.Context, tor *Torrent) {
	t.Helper()
	select {
	case <-tor.Done():
	case <-ctx.Done():
		t.Fatalf("download did not complete: %+v", tor.Stats())
	}
}

// TestSwarm runs one seeder and three leechers; leechers find each other
// through the seeder's dials and must all end with identical data.
func TestSwarm(t *testing.T) {
	tt := newTestTorrent(t, []int64{100_000, 0, 3 << 20, 777_777, 1 << 20}, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	seed := startNode(t, ctx, &wg, tt, tt.seedStore(t), tt.full())
	var leechers []*node
	for i := 0; i < 3; i++ {
		l := startNode(t, ctx, &wg, tt, storage.NewMemory(tt.layout), bitfield.Bitfield{})
		l.t.AddPeers(seed.addr)
		for _, o := range leechers {
			l.t.AddPeers(o.addr)
		}
		leechers = append(leechers, l)
	}
	for _, l := range leechers {
		waitDone(t, ctx, l.t)
		if got := readAll(t, l.store, int64(len(tt.data))); !bytes.Equal(got, tt.data) {
			t.Fatal("leecher data differs from the seed's")
		}
		s := l.t.Stats()
		if !s.Complete || s.Left != 0 || s.HashFailures != 0 || s.Downloaded < int64(len(tt.data)) {
			t.Fatalf("stats after completion: %+v", s)
		}
	}
}

// TestSelective downloads only one file; its boundary pieces are complete
// but the other files are not required.
func TestSelective(t *testing.T) {
	tt := newTestTorrent(t, []int64{300_000, 500_000, 300_000}, 128<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	seed := startNode(t, ctx, &wg, tt, tt.seedStore(t), tt.full())
	ln, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.ln.Close()
	store := storage.NewMemory(tt.layout)
	tor, err := New(tt.info, tt.hash, tt.layout, store, Config{Port: ln.Port(), WantedFiles: []bool{false, true, false}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); tor.Run(ctx) }()
	tor.AddPeers(seed.addr)
	waitDone(t, ctx, tor)
	off := tt.layout.FileOffset(1)
	got := make([]byte, 500_000)
	if _, err := store.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, tt.data[off:off+500_000]) {
		t.Fatal("selected file differs")
	}
	s := tor.Stats()
	if s.Wanted >= int64(len(tt.data)) || s.Downloaded >= int64(len(tt.data)) {
		t.Fatalf("downloaded more than the selection: %+v", s)
	}
}

// TestGarbagePeer: a peer that sends nonsense is disconnected and the
// download goes on with the honest seed.
func TestGarbagePeer(t *testing.T) {
	tt := newTestTorrent(t, []int64{1 << 20}, 32<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	leech := startNode(t, ctx, &wg, tt, storage.NewMemory(tt.layout), bitfield.Bitfield{})
	cases := map[string][]byte{
		"oversized":    {0x7f, 0xff, 0xff, 0xff, 7},
		"out of range": peerwire.Message{ID: peerwire.Have, Index: 1 << 20}.AppendTo(nil),
		"unrequested":  peerwire.Message{ID: peerwire.Piece, Index: 0, Begin: 0, Payload: make([]byte, 16<<10)}.AppendTo(nil),
	}
	for name, msg := range cases {
		c, err := net.Dial("tcp", leech.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: tt.hash, PeerID: peerwire.NewPeerID()})
		if _, err := peerwire.ReadHandshake(c); err != nil {
			t.Fatalf("%s: handshake: %v", name, err)
		}
		c.Write(msg)
		// The engine must hang up: reading ends with EOF or reset, not a timeout.
		_, err = io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: connection not closed", name)
		}
		c.Close()
	}
	seed := startNode(t, ctx, &wg, tt, tt.seedStore(t), tt.full())
	leech.t.AddPeers(seed.addr)
	waitDone(t, ctx, leech.t)
	if got := readAll(t, leech.store, int64(len(tt.data))); !bytes.Equal(got, tt.data) {
		t.Fatal("data differs")
	}
}

// BenchmarkTransfer moves a torrent from one in-memory seed to one
// in-memory leecher over loopback TCP: the engine's own ceiling, without
// disks.
func BenchmarkTransfer(b *testing.B) {
	tt := newTestTorrent(b, []int64{benchSize}, 1<<20)
	b.SetBytes(int64(len(tt.data)))
	b.ReportAllocs()
	seedStore := tt.seedStore(b)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		var wg sync.WaitGroup
		seed := startNode(b, ctx, &wg, tt, seedStore, tt.full())
		leech := startNode(b, ctx, &wg, tt, storage.NewMemory(tt.layout), bitfield.Bitfield{})
		leech.t.AddPeers(seed.addr)
		waitDone(b, ctx, leech.t)
		cancel()
		wg.Wait()
	}
}

const benchSize = 256 << 20

// TestLongTransfer moves more blocks than a peer may have queued at once,
// so request accounting must free slots as blocks are sent (a regression:
// the seed once counted requests it had answered as still queued and cut
// the leecher off as a flooder after 2048 blocks).
func TestLongTransfer(t *testing.T) {
	tt := newTestTorrent(t, []int64{3 * maxPeerRequests * blockSize / 2}, 256<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	seed := startNode(t, ctx, &wg, tt, tt.seedStore(t), tt.full())
	leech := startNode(t, ctx, &wg, tt, storage.NewMemory(tt.layout), bitfield.Bitfield{})
	leech.t.AddPeers(seed.addr)
	waitDone(t, ctx, leech.t)
	if n := seed.t.protocolCloses.Load(); n != 0 {
		t.Fatalf("seed closed %d connections for protocol violations", n)
	}
	if got := readAll(t, leech.store, int64(len(tt.data))); !bytes.Equal(got, tt.data) {
		t.Fatal("data differs")
	}
}

// syncCounter counts Sync calls on the storage it wraps.
type syncCounter struct {
	storage.Storage
	syncs atomic.Int32
}

func (s *syncCounter) Sync() error {
	s.syncs.Add(1)
	return s.Storage.Sync()
}

// TestSyncOnStop: Run syncs the storage when it stops only if asked to,
// and returns only after every verified piece was written either way.
func TestSyncOnStop(t *testing.T) {
	tt := newTestTorrent(t, []int64{700_000}, 64<<10)
	for _, syncOnStop := range []bool{false, true} {
		t.Run(fmt.Sprint(syncOnStop), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			seedCtx, stopSeed := context.WithCancel(ctx)
			defer func() { stopSeed(); wg.Wait() }()
			seed := startNode(t, seedCtx, &wg, tt, tt.seedStore(t), tt.full())

			store := &syncCounter{Storage: storage.NewMemory(tt.layout)}
			runCtx, stop := context.WithCancel(ctx)
			var lwg sync.WaitGroup
			l := startNodeConfig(t, runCtx, &lwg, tt, store, Config{SyncOnStop: syncOnStop})
			l.t.AddPeers(seed.addr)
			waitDone(t, ctx, l.t)
			stop()
			lwg.Wait() // Run has returned
			if got := readAll(t, store, int64(len(tt.data))); !bytes.Equal(got, tt.data) {
				t.Fatal("data differs from the seed's after Run returned")
			}
			want := int32(0)
			if syncOnStop {
				want = 1
			}
			if n := store.syncs.Load(); n != want {
				t.Fatalf("SyncOnStop %v: %d syncs, want %d", syncOnStop, n, want)
			}
		})
	}
}

// plainConn hides the *net.TCPConn behind a net.Conn, as an in-memory or
// proxied connection would be.
type plainConn struct{ net.Conn }

// TestDialHook: a leecher whose Config.Dial returns connections that are
// not *net.TCPConn downloads through the generic path, and the hook is
// what dialed.
func TestDialHook(t *testing.T) {
	tt := newTestTorrent(t, []int64{1 << 20}, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	seed := startNode(t, ctx, &wg, tt, tt.seedStore(t), tt.full())
	var dials atomic.Int32
	dial := func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a.String())
		if err != nil {
			return nil, err
		}
		return plainConn{c}, nil
	}
	leech := startNodeConfig(t, ctx, &wg, tt, storage.NewMemory(tt.layout), Config{Dial: dial})
	leech.t.AddPeers(seed.addr)
	waitDone(t, ctx, leech.t)
	if got := readAll(t, leech.store, int64(len(tt.data))); !bytes.Equal(got, tt.data) {
		t.Fatal("leecher data differs from the seed's")
	}
	if dials.Load() == 0 {
		t.Fatal("Config.Dial was not used")
	}
}
