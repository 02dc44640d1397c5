// Package wiretest watches Sower from the outside, on the wire, for tests:
// a DHT node that records which torrents it is asked about, and a peer
// that records what Sower tells it. CheckPrivate uses both to show that a
// private torrent (BEP 27) stays off the DHT and PEX.
package wiretest

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/dht"
	"github.com/sowerbt/sower/peerwire"
)

// StartDHT runs a DHT node on loopback whose socket records which
// torrents it is asked about, until the test ends. Its address is the
// bootstrap node to give the Sower under test.
func StartDHT(t testing.TB) (rec interface{ Seen([20]byte) int }, bootstrap string) {
	t.Helper()
	return startRecordingNode(t)
}

// Seen is how many get_peers/announce_peer queries named ih.
func (c *recordingConn) Seen(ih [20]byte) int { return c.seen(ih) }

// CheckPrivate connects two test peers to addr for each of a public and a
// private torrent Sower seeds there, and fails the test unless, on the
// wire, the public one offers ut_pex, sends PEX, sets the DHT bit, sends
// a port message and is asked about at the DHT node rec, while the
// private one does none of it.
func CheckPrivate(t testing.TB, addr net.Addr, rec interface{ Seen([20]byte) int }, public, private [20]byte) {
	t.Helper()
	stop := make(chan struct{})
	var peers []*wirePeer
	var dones []<-chan struct{}
	for i, ih := range [][20]byte{public, public, private, private} {
		p, done := dialWire(t, addr, ih, uint16(40000+i), stop)
		peers = append(peers, p)
		dones = append(dones, done)
	}
	// The public torrent's peers get PEX within a tick or two and the DHT
	// hears of it: by then the private torrent had every chance to leak.
	deadline := time.Now().Add(60 * time.Second)
	for !(peers[0].gotPEX() && peers[1].gotPEX() && rec.Seen(public) > 0) {
		if time.Now().After(deadline) {
			close(stop)
			t.Fatalf("no PEX to the public torrent's peers (%v, %v) or no DHT lookup of it (%d)", peers[0].gotPEX(), peers[1].gotPEX(), rec.Seen(public))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a private PEX round would have come by now
	close(stop)
	for _, d := range dones {
		<-d
	}
	for i, p := range peers[:2] {
		p.mu.Lock()
		_, ok := p.ext.ID("ut_pex")
		if !ok || !p.reserved.SupportsDHT() || !p.port {
			t.Errorf("public peer %d: ut_pex %v, DHT bit %v, port message %v; want all", i, ok, p.reserved.SupportsDHT(), p.port)
		}
		p.mu.Unlock()
	}
	for i, p := range peers[2:] {
		p.mu.Lock()
		if !p.gotExt {
			t.Errorf("private peer %d: no extension handshake", i)
		}
		if _, ok := p.ext.M["ut_pex"]; ok || p.pex || p.reserved.SupportsDHT() || p.port {
			t.Errorf("private peer %d: ut_pex offered %v, PEX sent %v, DHT bit %v, port message %v; want none", i, ok, p.pex, p.reserved.SupportsDHT(), p.port)
		}
		p.mu.Unlock()
	}
	if n := rec.Seen(private); n != 0 {
		t.Errorf("the DHT was asked %d times about the private torrent", n)
	}
}

// recordingConn is a UDP socket that remembers the info-hashes of the KRPC
// queries it receives.
type recordingConn struct {
	net.PacketConn
	mu     sync.Mutex
	hashes map[[20]byte]int // info_hash of get_peers/announce_peer -> count
}

func (c *recordingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if n > 0 {
		var q struct {
			A struct {
				InfoHash string `bencode:"info_hash"`
			} `bencode:"a"`
		}
		if (bencode.DecodeOptions{AllowUnsortedKeys: true}).Unmarshal(p[:n], &q) == nil && len(q.A.InfoHash) == 20 {
			c.mu.Lock()
			c.hashes[[20]byte([]byte(q.A.InfoHash))]++
			c.mu.Unlock()
		}
	}
	return n, addr, err
}

func (c *recordingConn) seen(ih [20]byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hashes[ih]
}

// startRecordingNode runs a DHT node on loopback whose socket records
// which torrents it is asked about; it is the bootstrap of the sessions
// under test.
func startRecordingNode(t testing.TB) (*recordingConn, string) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordingConn{PacketConn: pc, hashes: make(map[[20]byte]int)}
	n, err := dht.New(dht.Config{Conn: rc, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return rc, pc.LocalAddr().String()
}

// wirePeer is a test peer speaking the wire protocol to a session: it
// records what the session sends.
type wirePeer struct {
	mu       sync.Mutex // guards the fields below, written by the reader
	reserved peerwire.Reserved
	ext      peerwire.ExtHandshake
	gotExt   bool
	port     bool // a DHT port message came
	pex      bool // a ut_pex message came
}

func (p *wirePeer) gotPEX() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pex
}

// dialWire connects to addr for ih as a peer speaking the extension
// protocol (with ut_pex, listening on listenPort) and the DHT, and reads
// what comes until stop is closed.
func dialWire(t testing.TB, addr net.Addr, ih [20]byte, listenPort uint16, stop <-chan struct{}) (*wirePeer, <-chan struct{}) {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	var h peerwire.Handshake
	h.InfoHash, h.PeerID = ih, peerwire.NewPeerID()
	h.Reserved.SetExtended()
	h.Reserved.SetDHT()
	if err := peerwire.WriteHandshake(c, h); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	theirs, err := peerwire.ReadHandshake(br)
	if err != nil {
		t.Fatal(err)
	}
	w := peerwire.NewWriter(c)
	ext, err := peerwire.ExtHandshake{M: map[string]int{"ut_pex": 1}, Port: listenPort, Client: "wire test"}.Message()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteMessage(ext)
	w.Flush()
	p := &wirePeer{reserved: theirs.Reserved}
	done := make(chan struct{})
	go func() {
		<-stop
		c.Close()
	}()
	go func() {
		defer close(done)
		dec := peerwire.NewDecoder(br, peerwire.Limits{})
		for {
			m, err := dec.Next()
			if err != nil {
				return
			}
			p.mu.Lock()
			switch {
			case m.ID == peerwire.Port:
				p.port = true
			case m.ID == peerwire.Extended && m.ExtendedID == 0:
				p.gotExt = true
				p.ext, _ = peerwire.ParseExtHandshake(m.Payload)
			case m.ID == peerwire.Extended && m.ExtendedID == 1:
				p.pex = true
			}
			p.mu.Unlock()
		}
	}()
	return p, done
}
