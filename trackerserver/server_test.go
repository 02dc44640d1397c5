package trackerserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sowerbt/sower/tracker"
)

// fakeClock is a settable clock for expiry tests.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// running is a tracker serving on loopback for one test.
type running struct {
	srv             *Server
	httpURL, udpURL string // announce URLs
	base            string // http://host:port
	udpAddr         netip.AddrPort
	stop            func() error
}

// start serves cfg on 127.0.0.1 (or network's loopback) until the test
// ends; stop shuts it down early and returns Serve's and Close's error.
func start(t *testing.T, cfg Config, network string) *running {
	t.Helper()
	return startWrapped(t, cfg, network, nil)
}

// plainPacketConn hides the *net.UDPConn behind a PacketConn, which makes
// the server read one packet at a time instead of in batches.
type plainPacketConn struct{ net.PacketConn }

// startWrapped is start with the UDP socket passed through wrap (when not
// nil) before the server sees it.
func startWrapped(t *testing.T, cfg Config, network string, wrap func(net.PacketConn) net.PacketConn) *running {
	t.Helper()
	host := "127.0.0.1"
	if network == "6" {
		host = "::1"
	}
	ln, err := net.Listen("tcp"+network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("no loopback for tcp%s: %v", network, err)
	}
	pc, err := net.ListenPacket("udp"+network, net.JoinHostPort(host, "0"))
	if err != nil {
		ln.Close()
		t.Skipf("no loopback for udp%s: %v", network, err)
	}
	var logger *slog.Logger
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg, logger)
	if err != nil {
		ln.Close()
		pc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	served := pc
	if wrap != nil {
		served = wrap(pc)
	}
	go func() { done <- srv.Serve(ctx, []net.Listener{ln}, []net.PacketConn{served}) }()
	var stopped bool
	var stopErr error
	stop := func() error {
		if stopped {
			return stopErr
		}
		stopped = true
		cancel()
		select {
		case stopErr = <-done:
		case <-time.After(20 * time.Second):
			stopErr = errors.New("Serve did not return within 20s of cancel")
		}
		if err := srv.Close(); stopErr == nil {
			stopErr = err
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop tracker: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	return &running{
		srv: srv, base: base, httpURL: base + "/announce",
		udpURL:  "udp://" + pc.LocalAddr().String() + "/announce",
		udpAddr: pc.LocalAddr().(*net.UDPAddr).AddrPort(),
		stop:    stop,
	}
}

func id(s string) [20]byte {
	var b [20]byte
	copy(b[:], s)
	return b
}

func testClient() *tracker.Client {
	return &tracker.Client{HTTPTimeout: 10 * time.Second, UDPRetransmit: 2 * time.Second, UDPMaxAttempts: 3}
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// swarmScenario runs the same announces over url (HTTP or UDP): two
// leechers and a seeder find each other, seeders are not given to
// seeders, "completed" counts and "stopped" removes.
func swarmScenario(t *testing.T, url string) {
	c := testClient()
	ctx := ctx10(t)
	ih := id("swarm:" + url)
	ann := func(peer string, port uint16, left int64, ev tracker.Event) *tracker.AnnounceResponse {
		t.Helper()
		r, err := c.Announce(ctx, url, tracker.AnnounceRequest{InfoHash: ih, PeerID: id(peer), Port: port, Left: left, Event: ev, NumWant: -1, Key: uint32(port)})
		if err != nil {
			t.Fatalf("announce %s: %v", peer, err)
		}
		return r
	}
	r := ann("leecher-a", 1001, 100, tracker.Started)
	if len(r.Peers) != 0 || r.Incomplete != 1 || r.Complete != 0 {
		t.Fatalf("first announce: peers %v, complete %d, incomplete %d; want none, 0, 1", r.Peers, r.Complete, r.Incomplete)
	}
	if r.Interval != DefaultInterval {
		t.Errorf("interval %v, want %v", r.Interval, DefaultInterval)
	}
	r = ann("seeder-s", 1002, 0, tracker.Started)
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 1001 {
		t.Fatalf("seeder got peers %v, want leecher-a on port 1001", r.Peers)
	}
	if r.Complete != 1 || r.Incomplete != 1 {
		t.Errorf("counts %d/%d, want 1/1", r.Complete, r.Incomplete)
	}
	r = ann("leecher-b", 1003, 100, tracker.Started)
	if len(r.Peers) != 2 {
		t.Fatalf("leecher-b got %v, want both other peers", r.Peers)
	}
	// leecher-a completes: counted once even if repeated.
	ann("leecher-a", 1001, 0, tracker.Completed)
	ann("leecher-a", 1001, 0, tracker.Completed)
	r = ann("seeder-s", 1002, 0, tracker.None)
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 1003 {
		t.Fatalf("seeder got %v, want only leecher-b (no seeders for seeders)", r.Peers)
	}
	st, err := c.Scrape(ctx, url, [][20]byte{ih, id("unknown-torrent-hash")})
	if err != nil {
		t.Fatal(err)
	}
	if got := st[ih]; got != (tracker.ScrapeStats{Complete: 2, Incomplete: 1, Downloaded: 1}) {
		t.Errorf("scrape %+v, want 2 seeders, 1 leecher, 1 downloaded", got)
	}
	ann("leecher-b", 1003, 100, tracker.Stopped)
	r = ann("seeder-s", 1002, 0, tracker.None)
	if len(r.Peers) != 0 || r.Incomplete != 0 || r.Complete != 2 {
		t.Fatalf("after stop: peers %v, %d/%d; want none, 2 seeders, 0 leechers", r.Peers, r.Complete, r.Incomplete)
	}
}

func TestHTTPSwarm(t *testing.T) {
	swarmScenario(t, start(t, Config{}, "4").httpURL)
}

func TestUDPSwarm(t *testing.T) {
	swarmScenario(t, start(t, Config{}, "4").udpURL)
}

// TestUDPSwarmUnbatched runs the scenario through the one-packet-at-a-time
// path that serves sockets other than *net.UDPConn (and every socket
// outside Linux).
func TestUDPSwarmUnbatched(t *testing.T) {
	rt := startWrapped(t, Config{}, "4", func(pc net.PacketConn) net.PacketConn { return plainPacketConn{pc} })
	swarmScenario(t, rt.udpURL)
}

func TestIPv6Swarm(t *testing.T) {
	rt := start(t, Config{}, "6")
	swarmScenario(t, rt.httpURL)
	swarmScenario(t, rt.udpURL)
}

func TestNumWantCapAndExpiry(t *testing.T) {
	clk := newFakeClock()
	rt := start(t, Config{Now: clk.Now, MaxNumWant: 5, Interval: Duration(time.Minute)}, "4")
	c := testClient()
	ctx := ctx10(t)
	ih := id("numwant-hash")
	for i := range 20 {
		_, err := c.Announce(ctx, rt.httpURL, tracker.AnnounceRequest{InfoHash: ih, PeerID: id(fmt.Sprint("p", i)), Port: uint16(2000 + i), Left: 1, NumWant: 1_000_000_000})
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Announce(ctx, rt.httpURL, tracker.AnnounceRequest{InfoHash: ih, PeerID: id("asker"), Port: 3000, Left: 1, NumWant: 1_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 5 || r.Incomplete != 21 {
		t.Fatalf("got %d peers of %d; want 5 of 21", len(r.Peers), r.Incomplete)
	}
	// Two intervals later everyone but a fresh announcer has expired.
	clk.Add(2*time.Minute + 2*time.Second)
	if n := rt.srv.sweep(); n != 21 {
		t.Errorf("sweep expired %d peers, want 21", n)
	}
	r, err = c.Announce(ctx, rt.httpURL, tracker.AnnounceRequest{InfoHash: ih, PeerID: id("late"), Port: 3001, Left: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 0 || r.Incomplete != 1 {
		t.Fatalf("after expiry: %d peers, %d leechers; want 0 and 1", len(r.Peers), r.Incomplete)
	}
	if got := rt.srv.table.peers(); got != 1 {
		t.Errorf("peer count %d, want 1", got)
	}
}

func TestCaps(t *testing.T) {
	rt := start(t, Config{MaxPeersPerTorrent: 2, MaxTorrents: 2, MaxPeers: 3}, "4")
	c := testClient()
	ctx := ctx10(t)
	ann := func(ih, peer string) error {
		_, err := c.Announce(ctx, rt.httpURL, tracker.AnnounceRequest{InfoHash: id(ih), PeerID: id(peer), Port: 1, Left: 1})
		return err
	}
	mustFail := func(err error, want string) {
		t.Helper()
		var fe *tracker.FailureError
		if !errors.As(err, &fe) || fe.Reason != want {
			t.Fatalf("got %v, want failure %q", err, want)
		}
	}
	for _, p := range []string{"a", "b"} {
		if err := ann("t1", p); err != nil {
			t.Fatal(err)
		}
	}
	mustFail(ann("t1", "c"), errSwarmFull.Error())
	if err := ann("t2", "a"); err != nil {
		t.Fatal(err)
	}
	mustFail(ann("t2", "b"), errTrackerFull.Error())
	mustFail(ann("t3", "a"), errTooMany.Error())
}
