package metadata

import (
	"bufio"
	"context"
	"crypto/sha1"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
)

// behaviour is how a fake peer serves metadata.
type behaviour int

const (
	good      behaviour = iota
	corrupt             // flips a bit in the last piece
	rejecting           // rejects every request
	noUT                // extension handshake without ut_metadata
	noExtBit            // no extension protocol bit in the handshake
	liar                // announces one byte more than there is, and serves it
	huge                // announces 1 GiB
	asker               // asks us for metadata first, and serves only once we rejected
	silent              // never answers requests
)

// fakeExtID is the ut_metadata id fake peers ask us to use; it differs
// from ours so that a mix-up shows.
const fakeExtID = 3

// fakePeer is a minimal BitTorrent peer on 127.0.0.1 that serves one info
// dictionary over ut_metadata.
type fakePeer struct {
	t        testing.TB
	ln       net.Listener
	info     []byte
	infoHash [20]byte
	b        behaviour

	requests  atomic.Int64 // ut_metadata requests received
	gotReject atomic.Bool  // an asker saw our reject

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startFake(t testing.TB, info []byte, b behaviour) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePeer{t: t, ln: ln, info: info, infoHash: sha1.Sum(info), b: b}
	fp.wg.Go(fp.accept)
	t.Cleanup(func() {
		ln.Close()
		fp.mu.Lock()
		for _, c := range fp.conns {
			c.Close()
		}
		fp.mu.Unlock()
		fp.wg.Wait()
	})
	return fp
}

func (fp *fakePeer) addr() netip.AddrPort {
	return fp.ln.Addr().(*net.TCPAddr).AddrPort()
}

func (fp *fakePeer) accept() {
	for {
		c, err := fp.ln.Accept()
		if err != nil {
			return
		}
		fp.mu.Lock()
		fp.conns = append(fp.conns, c)
		fp.mu.Unlock()
		fp.wg.Go(func() {
			defer c.Close()
			if err := fp.serve(c); err != nil {
				fp.t.Logf("fake peer %d: %v", fp.b, err)
			}
		})
	}
}

// data returns what the peer serves and the size it announces.
func (fp *fakePeer) data() []byte {
	switch fp.b {
	case liar:
		return append(append([]byte(nil), fp.info...), 'e')
	case corrupt:
		d := append([]byte(nil), fp.info...)
		d[len(d)-1] ^= 1
		return d
	}
	return fp.info
}

func (fp *fakePeer) serve(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	h, err := peerwire.ReadHandshake(br)
	if err != nil {
		return err
	}
	if h.InfoHash != fp.infoHash || !h.Reserved.SupportsExtended() {
		return errors.New("bad handshake from Fetch")
	}
	var res peerwire.Reserved
	if fp.b != noExtBit {
		res.SetExtended()
	}
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{Reserved: res, InfoHash: fp.infoHash, PeerID: peerwire.NewPeerID()}); err != nil {
		return err
	}
	w := peerwire.NewWriter(c)
	data := fp.data()
	ext := map[string]any{"m": map[string]int{"ut_metadata": fakeExtID, "ut_pex": 1}, "metadata_size": len(data), "v": "fake"}
	switch fp.b {
	case noUT:
		ext = map[string]any{"m": map[string]int{"ut_pex": 1}}
	case huge:
		ext["metadata_size"] = 1 << 30
	}
	payload, err := bencode.Marshal(ext)
	if err != nil {
		return err
	}
	// Something unrelated first, as real peers send.
	if err := w.WriteMessage(peerwire.Message{ID: peerwire.Extended, Payload: payload}); err != nil {
		return err
	}
	if err := w.WriteMessage(peerwire.Message{ID: peerwire.HaveNone}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	dec := peerwire.NewDecoder(br, peerwire.Limits{})
	var theirID uint8
	var held []int // an asker's requests waiting for our reject
	send := func(m Msg) error {
		p, err := m.Append(nil)
		if err != nil {
			return err
		}
		if err := w.WriteMessage(peerwire.Message{ID: peerwire.Extended, ExtendedID: theirID, Payload: p}); err != nil {
			return err
		}
		return w.Flush()
	}
	answer := func(piece int) error {
		switch fp.b {
		case silent:
			return nil
		case rejecting:
			return send(Msg{Type: TypeReject, Piece: piece})
		}
		return send(Msg{Type: TypeData, Piece: piece, TotalSize: len(data), Data: data[piece*BlockSize : piece*BlockSize+PieceLen(len(data), piece)]})
	}
	for {
		m, err := dec.Next()
		if err != nil {
			return nil // Fetch closed the connection
		}
		if m.ID != peerwire.Extended {
			continue
		}
		if m.ExtendedID == 0 {
			var eh struct {
				M map[string]int `bencode:"m"`
			}
			if err := bencode.Unmarshal(m.Payload, &eh); err != nil {
				return err
			}
			theirID = uint8(eh.M["ut_metadata"])
			if theirID != ourExtID {
				return errors.New("Fetch did not advertise ut_metadata")
			}
			if fp.b == asker {
				if err := send(Msg{Type: TypeRequest, Piece: 0}); err != nil {
					return err
				}
			}
			continue
		}
		if m.ExtendedID != fakeExtID {
			return errors.New("Fetch used the wrong extended message id")
		}
		msg, err := ParseMsg(m.Payload)
		if err != nil {
			return err
		}
		switch msg.Type {
		case TypeReject:
			fp.gotReject.Store(true)
			for _, p := range held {
				if err := answer(p); err != nil {
					return err
				}
			}
			held = nil
		case TypeRequest:
			fp.requests.Add(1)
			if fp.b == asker && !fp.gotReject.Load() {
				held = append(held, msg.Piece)
				continue
			}
			if err := answer(msg.Piece); err != nil {
				return err
			}
		}
	}
}

// testInfo returns a valid single-file info dictionary of about
// hashes*20 bytes.
func testInfo(t testing.TB, hashes int) []byte {
	t.Helper()
	info, err := bencode.Marshal(map[string]any{
		"name":         "test.bin",
		"piece length": 16384,
		"length":       int64(hashes) * 16384,
		"pieces":       randomBytes(t, 20*hashes),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metainfo.ParseInfo(info); err != nil {
		t.Fatal(err)
	}
	return info
}

func fetchFrom(t *testing.T, infoHash [20]byte, cfg Config, peers ...netip.AddrPort) ([]byte, error) {
	t.Helper()
	ch := make(chan netip.AddrPort, len(peers))
	for _, p := range peers {
		ch <- p
	}
	close(ch)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.PeerID = peerwire.NewPeerID()
	cfg.DialTimeout = 10 * time.Second
	return Fetch(ctx, infoHash, ch, cfg)
}

func TestFetchMixedPeers(t *testing.T) {
	info := testInfo(t, 3000) // four pieces, the last one short
	ih := sha1.Sum(info)
	var addrs []netip.AddrPort
	for _, b := range []behaviour{corrupt, rejecting, noUT, noExtBit, liar, huge, good} {
		addrs = append(addrs, startFake(t, info, b).addr())
	}
	// Several rounds, as which peer answers first varies.
	for range 5 {
		got, err := fetchFrom(t, ih, Config{}, addrs...)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(info) {
			t.Fatal("Fetch returned other bytes than the info dictionary")
		}
	}
}

// TestFetchOneAtATime dials peers one by one, so that the bad peer is
// certainly asked first and must be dropped before the good one is tried.
func TestFetchOneAtATime(t *testing.T) {
	info := testInfo(t, 2000)
	ih := sha1.Sum(info)
	for _, b := range []behaviour{corrupt, rejecting, liar, noUT, asker, silent} {
		bad := startFake(t, info, b)
		goodPeer := startFake(t, info, good)
		// The short timeout only makes the silent peer's test quick; no
		// outcome depends on it.
		got, err := fetchFrom(t, ih, Config{MaxConns: 1, RequestTimeout: 100 * time.Millisecond}, bad.addr(), goodPeer.addr())
		if err != nil {
			t.Fatalf("behaviour %d first: %v", b, err)
		}
		if string(got) != string(info) {
			t.Fatalf("behaviour %d first: wrong bytes", b)
		}
		if b != noUT && bad.requests.Load() == 0 {
			t.Errorf("behaviour %d: the first peer got no requests", b)
		}
		if b == asker {
			if !bad.gotReject.Load() {
				t.Error("the asking peer got no reject")
			}
			if goodPeer.requests.Load() != 0 {
				t.Error("the asking peer served the metadata, yet the second peer was asked too")
			}
		}
	}
}

// TestFetchCorruptAmongMany has a corrupt and a good peer share a large
// dictionary, so that the assembled result fails the hash with pieces from
// both and Fetch has to fall back to single sources.
func TestFetchCorruptAmongMany(t *testing.T) {
	info := testInfo(t, 20000) // 25 pieces
	ih := sha1.Sum(info)
	for range 3 {
		c := startFake(t, info, corrupt)
		g := startFake(t, info, good)
		got, err := fetchFrom(t, ih, Config{MaxConns: 2}, c.addr(), g.addr())
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(info) {
			t.Fatal("wrong bytes")
		}
	}
}

func TestFetchFailures(t *testing.T) {
	info := testInfo(t, 1000)
	ih := sha1.Sum(info)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().(*net.TCPAddr).AddrPort()
	closed.Close()

	tests := []struct {
		name string
		b    behaviour
		cfg  Config
		want string
	}{
		{"rejects", rejecting, Config{}, "1 rejected"},
		{"no ut_metadata", noUT, Config{}, "1 lacked ut_metadata"},
		{"no extension bit", noExtBit, Config{}, "1 lacked ut_metadata"},
		{"corrupt", corrupt, Config{}, "1 sent bad data"},
		{"wrong size", liar, Config{}, "1 sent bad data"},
		{"huge size", huge, Config{}, "1 announced a bad size"},
		{"above MaxSize", good, Config{MaxSize: 1000}, "1 announced a bad size"},
		{"silent", silent, Config{RequestTimeout: 100 * time.Millisecond}, "1 timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := startFake(t, info, tt.b)
			_, err := fetchFrom(t, ih, tt.cfg, fp.addr(), closedAddr)
			if !errors.Is(err, ErrNoPeerLeft) {
				t.Fatalf("got %v, want ErrNoPeerLeft", err)
			}
			for _, want := range []string{tt.want, "1 could not be dialled", "2 peers dialled"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestFetchNoPeers(t *testing.T) {
	_, err := fetchFrom(t, [20]byte{1}, Config{})
	if !errors.Is(err, ErrNoPeers) {
		t.Fatalf("got %v, want ErrNoPeers", err)
	}
	// Unusable addresses count as none.
	_, err = fetchFrom(t, [20]byte{1}, Config{}, netip.AddrPort{}, netip.MustParseAddrPort("0.0.0.0:80"), netip.MustParseAddrPort("127.0.0.1:0"))
	if !errors.Is(err, ErrNoPeers) {
		t.Fatalf("got %v, want ErrNoPeers", err)
	}
}

func TestFetchContextEnds(t *testing.T) {
	ch := make(chan netip.AddrPort) // open, and nobody sends
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Fetch(ctx, [20]byte{1}, ch, Config{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestFetchDuplicateAddresses gives the same peer many times; it is dialled
// once.
func TestFetchDuplicateAddresses(t *testing.T) {
	info := testInfo(t, 100)
	fp := startFake(t, info, rejecting)
	a := fp.addr()
	mapped := netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	_, err := fetchFrom(t, sha1.Sum(info), Config{}, a, a, mapped, a)
	if err == nil || !strings.Contains(err.Error(), "(1 peers dialled: 1 rejected)") {
		t.Fatalf("got %v, want one peer dialled", err)
	}
}

// BenchmarkFetch measures a whole fetch of a 64 KiB info dictionary from
// one peer on loopback: dial, both handshakes and four pieces.
func BenchmarkFetch(b *testing.B) {
	info := testInfo(b, 3200)
	ih := sha1.Sum(info)
	fp := startFake(b, info, good)
	b.ReportAllocs()
	for b.Loop() {
		ch := make(chan netip.AddrPort, 1)
		ch <- fp.addr()
		close(ch)
		got, err := Fetch(context.Background(), ih, ch, Config{})
		if err != nil || len(got) != len(info) {
			b.Fatalf("%d bytes, %v", len(got), err)
		}
	}
}
