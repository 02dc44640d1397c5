package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/tracker"
	"github.com/sowerbt/sower/trackerserver"
)

// clock is a settable clock shared by the instances of a test, so that
// peers can be made to expire without waiting.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// instance is one tracker on the shared store, serving on loopback.
type instance struct {
	srv              *trackerserver.Server
	store            *Store
	httpURL, udpURL  string
	base             string
	udpAddr          netip.AddrPort
	scrapeHTTP       string
	privateURLPrefix string
}

// startInstance runs a tracker with cfg on a store opened from urls until
// the test ends.
func startInstance(t *testing.T, cfg trackerserver.Config, urls ...string) *instance {
	t.Helper()
	o, err := ParseURLs(urls, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	srv, err := trackerserver.New(cfg, nil)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, []net.Listener{ln}, []net.PacketConn{pc}) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not return within 20s")
		}
		srv.Close()
		st.Close()
	})
	base := "http://" + ln.Addr().String()
	return &instance{
		srv: srv, store: st, base: base, httpURL: base + "/announce", scrapeHTTP: base + "/scrape",
		udpURL: "udp://" + pc.LocalAddr().String() + "/announce", udpAddr: pc.LocalAddr().(*net.UDPAddr).AddrPort(),
	}
}

func client() *tracker.Client {
	return &tracker.Client{HTTPTimeout: 5 * time.Second, UDPRetransmit: 3 * time.Second, UDPMaxAttempts: 1}
}

func peerID(s string) [20]byte {
	var b [20]byte
	copy(b[:], "-TS0001-"+s)
	return b
}

func announce(t *testing.T, url string, ih [20]byte, peer string, port uint16, left int64, ev tracker.Event) *tracker.AnnounceResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := client().Announce(ctx, url, tracker.AnnounceRequest{InfoHash: ih, PeerID: peerID(peer), Port: port, Left: left, Event: ev, NumWant: -1})
	if err != nil {
		t.Fatalf("announce %s of %s to %s: %v", ev, peer, url, err)
	}
	return r
}

func ports(r *tracker.AnnounceResponse) []int {
	var ps []int
	for _, p := range r.Peers {
		ps = append(ps, int(p.Addr.Port()))
	}
	slices.Sort(ps)
	return ps
}

func wantPorts(t *testing.T, what string, r *tracker.AnnounceResponse, want ...int) {
	t.Helper()
	if got := ports(r); !slices.Equal(got, want) {
		t.Fatalf("%s: peers on ports %v, want %v", what, got, want)
	}
}

// wantScrape checks the counters of ih over HTTP and UDP on every instance.
func wantScrape(t *testing.T, ih [20]byte, want tracker.ScrapeStats, insts ...*instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, in := range insts {
		for _, u := range []string{in.httpURL, in.udpURL} {
			st, err := client().Scrape(ctx, u, [][20]byte{ih})
			if err != nil {
				t.Fatalf("scrape %s: %v", u, err)
			}
			if got := st[ih]; got != want {
				t.Fatalf("scrape %s: %+v, want %+v", u, got, want)
			}
		}
	}
}

// sharedScenario runs announces of one swarm through two instances: what
// one learns, the other hands out and counts.
func sharedScenario(t *testing.T, a, b *instance, ih [20]byte) {
	t.Helper()
	r := announce(t, a.httpURL, ih, "seed-x", 7001, 0, tracker.Started)
	wantPorts(t, "first seeder", r)
	r = announce(t, b.httpURL, ih, "leech-y", 7002, 100, tracker.Started)
	wantPorts(t, "leecher over HTTP to B", r, 7001)
	if r.Complete != 1 || r.Incomplete != 1 {
		t.Fatalf("B's counts: %d seeders, %d leechers, want 1 and 1", r.Complete, r.Incomplete)
	}
	r = announce(t, b.udpURL, ih, "leech-w", 7003, 100, tracker.Started)
	if !slices.Contains(ports(r), 7001) {
		t.Fatalf("leecher over UDP to B: peers %v lack the seeder announced to A", ports(r))
	}
	wantScrape(t, ih, tracker.ScrapeStats{Complete: 1, Incomplete: 2}, a, b)
	// One download, reported to B and (as a client retrying would) to A.
	announce(t, b.httpURL, ih, "leech-y", 7002, 0, tracker.Completed)
	announce(t, a.udpURL, ih, "leech-y", 7002, 0, tracker.Completed)
	wantScrape(t, ih, tracker.ScrapeStats{Complete: 2, Incomplete: 1, Downloaded: 1}, a, b)
	// A seeder stops on B: A no longer hands it out.
	announce(t, b.httpURL, ih, "seed-x", 7001, 0, tracker.Stopped)
	r = announce(t, a.httpURL, ih, "leech-w", 7003, 100, tracker.None)
	wantPorts(t, "after the seeder stopped", r, 7002)
	r = announce(t, a.udpURL, ih, "leech-w", 7003, 100, tracker.None)
	wantPorts(t, "after the seeder stopped, over UDP", r, 7002)
	wantScrape(t, ih, tracker.ScrapeStats{Complete: 1, Incomplete: 1, Downloaded: 1}, a, b)
}

func testConfig(c *clock) trackerserver.Config {
	return trackerserver.Config{Interval: trackerserver.Duration(time.Minute), ExpireFactor: 2, Now: c.Now, FlushInterval: trackerserver.Duration(100 * time.Millisecond)}
}

func TestTwoInstancesOneRedis(t *testing.T) {
	rd := testpeers.StartRedis(t)
	c := newClock()
	a := startInstance(t, testConfig(c), "redis://"+rd.Addr)
	b := startInstance(t, testConfig(c), "redis://"+rd.Addr+"/0")
	ih := [20]byte{1, 2, 3}
	sharedScenario(t, a, b, ih)

	// Expiry: after the peer lifetime, the next announce drops the silent
	// peers from the swarm's sets itself (no scan of the store) and
	// neither hands them out nor counts them.
	c.Add(2*time.Minute + time.Second)
	r := announce(t, b.httpURL, ih, "leech-v", 7004, 100, tracker.Started)
	wantPorts(t, "after expiry", r)
	if r.Complete != 0 || r.Incomplete != 1 {
		t.Fatalf("after expiry: %d seeders, %d leechers, want 0 and 1", r.Complete, r.Incomplete)
	}
	ctx := context.Background()
	p := swarmPrefix(ih)
	for _, k := range []string{p + "s4", p + "l4"} {
		n, err := a.store.c.Do(ctx, a.store.c.B().Zcard().Key(k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if k == p+"l4" {
			want = 1 // leech-v itself
		}
		if n != want {
			t.Fatalf("%s holds %d peers after expiry, want %d (expired peers not trimmed)", k, n, want)
		}
	}
	wantScrape(t, ih, tracker.ScrapeStats{Complete: 0, Incomplete: 1, Downloaded: 1}, a, b)
}

// TestSharedConnectionIDs: a UDP connection id from one instance is
// accepted by another (they derive it from a secret kept in the store).
func TestSharedConnectionIDs(t *testing.T) {
	rd := testpeers.StartRedis(t)
	c := newClock()
	a := startInstance(t, testConfig(c), "redis://"+rd.Addr)
	b := startInstance(t, testConfig(c), "redis://"+rd.Addr)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exchange := func(to netip.AddrPort, pkt []byte) []byte {
		t.Helper()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	req := binary.BigEndian.AppendUint64(nil, 0x41727101980)
	req = binary.BigEndian.AppendUint32(req, 0)
	req = binary.BigEndian.AppendUint32(req, 77)
	resp := exchange(a.udpAddr, req)
	if len(resp) != 16 || binary.BigEndian.Uint32(resp) != 0 {
		t.Fatalf("connect answered %x", resp)
	}
	cid := binary.BigEndian.Uint64(resp[8:])
	ann := binary.BigEndian.AppendUint64(nil, cid)
	ann = binary.BigEndian.AppendUint32(ann, 1)
	ann = binary.BigEndian.AppendUint32(ann, 78)
	ih, id := [20]byte{9}, peerID("udp")
	ann = append(ann, ih[:]...)
	ann = append(ann, id[:]...)
	ann = append(ann, make([]byte, 8+8+8+4+4+4)...) // downloaded, left, uploaded, event, ip, key
	ann = binary.BigEndian.AppendUint32(ann, 10)    // numwant
	ann = binary.BigEndian.AppendUint16(ann, 6881)
	resp = exchange(b.udpAddr, ann)
	if len(resp) < 20 || binary.BigEndian.Uint32(resp) != 1 {
		t.Fatalf("B refused A's connection id: %q", resp)
	}
}

func TestPasskeysShared(t *testing.T) {
	rd := testpeers.StartRedis(t)
	c := newClock()
	cfg := testConfig(c)
	cfg.Mode = trackerserver.ModePrivate
	a := startInstance(t, cfg, "redis://"+rd.Addr)
	b := startInstance(t, cfg, "redis://"+rd.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u, err := a.store.AddUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.AddUser(ctx, "alice"); err == nil {
		t.Fatal("adding alice twice succeeded")
	}
	// A private tracker tracks registered torrents only: registered
	// through the shared whitelist, which both instances read.
	ih := [20]byte{7}
	if _, err := client().Announce(ctx, a.base+"/"+u.Passkey+"/announce", tracker.AnnounceRequest{InfoHash: ih, PeerID: peerID("p0"), Port: 7099, Left: 1, NumWant: -1}); err == nil || !strings.Contains(err.Error(), "not tracked") {
		t.Fatalf("unregistered torrent: %v, want a refusal", err)
	}
	if err := a.store.AddListed(ctx, [][20]byte{ih}); err != nil {
		t.Fatal(err)
	}
	urlA, urlB := a.base+"/"+u.Passkey+"/announce", b.base+"/"+u.Passkey+"/announce"
	// Whitelist changes reach the instances' caches as invalidation
	// messages, within moments.
	for deadline := time.Now().Add(2 * time.Second); ; {
		_, err := client().Announce(ctx, urlA, tracker.AnnounceRequest{InfoHash: ih, PeerID: peerID("p1"), Port: 7100, Left: 100, Event: tracker.Started, NumWant: -1})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registered torrent still refused 2s later: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Traffic is counted from the totals across instances: 1000 bytes up
	// reported to B after "started" on A.
	if _, err := client().Announce(ctx, urlB, tracker.AnnounceRequest{InfoHash: ih, PeerID: peerID("p1"), Port: 7100, Left: 100, Uploaded: 1000, Downloaded: 300, NumWant: -1}); err != nil {
		t.Fatal(err)
	}
	for {
		us, err := a.store.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(us) == 1 && us[0].Uploaded == 1000 && us[0].Downloaded == 300 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("users %+v, want alice with 1000 up and 300 down", us)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Revoked through instance A's store: B refuses the passkey.
	if _, err := a.store.RevokeUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := client().Announce(ctx, urlB, tracker.AnnounceRequest{InfoHash: ih, PeerID: peerID("p1"), Port: 7100, Left: 100, NumWant: -1})
		var fe *tracker.FailureError
		if errors.As(err, &fe) && fe.Reason == "unknown passkey" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still answers a revoked passkey 2s later: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	u2, err := b.store.RotateUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	announce(t, a.base+"/"+u2.Passkey+"/announce", ih, "p1", 7100, 100, tracker.None)
}

// TestManyExpiredNotHandedOut: when more peers expired than one announce
// trims, the rest are still neither handed out nor counted, and later
// announces trim them.
func TestManyExpiredNotHandedOut(t *testing.T) {
	rd := testpeers.StartRedis(t)
	o, err := ParseURLs([]string{"redis://" + rd.Addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ih := [20]byte{0xee}
	ann := func(port int, seeder bool, now int64) (trackerserver.SharedReply, []string) {
		t.Helper()
		a := trackerserver.SharedAnnounce{InfoHash: ih, Addr: []byte{127, 0, 0, 1, byte(port >> 8), byte(port)}, Seeder: seeder,
			Now: now, Cutoff: now - 100, TTL: 100, NumWant: 50, MaxPeersPerFamily: 1000}
		r, err := st.Announce(ctx, &a)
		if err != nil {
			t.Fatal(err)
		}
		return r, a.Peers
	}
	for p := range 40 {
		ann(1000+p, true, 1000)
	}
	r, peers := ann(2000, false, 1200)
	if len(peers) != 0 || r.Seeders != 0 || r.Leechers != 1 {
		t.Fatalf("after 40 seeders expired: %d peers handed out, %d seeders and %d leechers counted, want 0, 0, 1", len(peers), r.Seeders, r.Leechers)
	}
	n, err := st.c.Do(ctx, st.c.B().Zcard().Key(swarmPrefix(ih)+"s4").Build()).AsInt64()
	if err != nil || n != 40-16 {
		t.Fatalf("seeders set holds %d (%v), want %d after one bounded trim", n, err, 40-16)
	}
	for range 2 {
		ann(2000, false, 1201)
	}
	if n, _ := st.c.Do(ctx, st.c.B().Zcard().Key(swarmPrefix(ih)+"s4").Build()).AsInt64(); n != 0 {
		t.Fatalf("seeders set holds %d after three announces, want 0", n)
	}
}
