package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/tracker"
	"github.com/sowerbt/sower/trackerserver"
)

// announceLog is a test tracker recording each announce's event; it
// answers with interval and min interval (seconds) and no peers, or fails
// while failN > 0.
type announceLog struct {
	mu       sync.Mutex
	events   []string
	at       []time.Time
	failN    int
	interval int
	minIntvl int
	ch       chan string
}

func newAnnounceLog(interval, minInterval int) *announceLog {
	return &announceLog{interval: interval, minIntvl: minInterval, ch: make(chan string, 100)}
}

func (l *announceLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/announce") {
		http.NotFound(w, r) // scrapes
		return
	}
	ev := r.URL.Query().Get("event")
	if ev == "" {
		ev = "none"
	}
	l.mu.Lock()
	fail := l.failN > 0
	if fail {
		l.failN--
		ev = "failed:" + ev
	}
	l.events = append(l.events, ev)
	l.at = append(l.at, time.Now())
	body := fmt.Sprintf("d8:intervali%de12:min intervali%de5:peers0:e", l.interval, l.minIntvl)
	l.mu.Unlock()
	select {
	case l.ch <- ev:
	default:
	}
	if fail {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprint(w, body)
}

func (l *announceLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (l *announceLog) wait(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-l.ch:
		return ev
	case <-time.After(15 * time.Second):
		t.Fatalf("no announce arrived; so far %v", l.snapshot())
		return ""
	}
}

// newSession opens a loopback session without DHT, closed at the end.
func newSession(t *testing.T, cfg Config) *Session {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DHTBootstrap == nil {
		cfg.NoDHT = true
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSwarmAnnounceLifecycle(t *testing.T) {
	log := newAnnounceLog(1, 0)
	srv := httptest.NewServer(log)
	defer srv.Close()
	s := newSession(t, Config{AnnounceFloor: 50 * time.Millisecond})
	w, err := s.Join([20]byte{1}, SwarmOptions{
		Trackers: [][]string{{srv.URL + "/announce"}},
		Stats:    func() tracker.Stats { return tracker.Stats{Left: 7} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join([20]byte{1}, SwarmOptions{}); err == nil {
		t.Fatal("joined the same torrent twice")
	}
	if ev := log.wait(t); ev != "started" {
		t.Fatalf("first announce %q, want started", ev)
	}
	if ev := log.wait(t); ev != "none" {
		t.Fatalf("second announce %q, want a regular one after the interval", ev)
	}
	w.Completed()
	for ev := log.wait(t); ev != "completed"; ev = log.wait(t) {
		if ev != "none" {
			t.Fatalf("announce %q while waiting for completed", ev)
		}
	}
	w.Completed() // a second call must not send another
	w.Leave()
	for ev := log.wait(t); ev != "stopped"; ev = log.wait(t) {
		if ev != "none" {
			t.Fatalf("announce %q while waiting for stopped", ev)
		}
	}
	n := 0
	for _, e := range log.snapshot() {
		if e == "completed" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("events %v: want exactly one completed", log.snapshot())
	}
	if s.swarm([20]byte{1}) != nil {
		t.Error("swarm still routed after Leave")
	}
}

func TestCloseSendsStopped(t *testing.T) {
	log := newAnnounceLog(3600, 0)
	srv := httptest.NewServer(log)
	defer srv.Close()
	s, err := New(Config{Listen: "127.0.0.1:0", NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join([20]byte{2}, SwarmOptions{Trackers: [][]string{{srv.URL + "/announce"}}}); err != nil {
		t.Fatal(err)
	}
	if ev := log.wait(t); ev != "started" {
		t.Fatalf("first announce %q", ev)
	}
	waitFor(t, "the started announce recorded", func() bool { return s.swarm([20]byte{2}).Trackers()[0].LastOK })
	s.Close()
	if evs := log.snapshot(); evs[len(evs)-1] != "stopped" {
		t.Fatalf("events %v: Close must send stopped", evs)
	}
}

func TestCompletedBeforeStartedGetsThrough(t *testing.T) {
	log := newAnnounceLog(3600, 0)
	log.failN = 2
	srv := httptest.NewServer(log)
	defer srv.Close()
	s := newSession(t, Config{AnnounceRetry: 20 * time.Millisecond})
	w, err := s.Join([20]byte{3}, SwarmOptions{Trackers: [][]string{{srv.URL + "/announce"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := log.wait(t); ev != "failed:started" {
		t.Fatalf("first announce %q", ev)
	}
	w.Completed()
	want := []string{"failed:started", "started", "completed"}
	for i, wv := range want {
		if ev := log.wait(t); ev != wv {
			t.Fatalf("announce %d after the first = %q, want %q (all %v)", i, ev, wv, log.snapshot())
		}
	}
}

func TestReannounceRespectsMinInterval(t *testing.T) {
	log := newAnnounceLog(3600, 1)
	srv := httptest.NewServer(log)
	defer srv.Close()
	s := newSession(t, Config{AnnounceFloor: time.Millisecond})
	w, err := s.Join([20]byte{4}, SwarmOptions{Trackers: [][]string{{srv.URL + "/announce"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := log.wait(t); ev != "started" {
		t.Fatalf("first announce %q", ev)
	}
	// The started announce's reply may still be on its way: wait until the
	// session has recorded it.
	deadline := time.Now().Add(15 * time.Second)
	for w.NextAnnounce().IsZero() || time.Until(w.NextAnnounce()) < 30*time.Minute {
		if time.Now().After(deadline) {
			t.Fatal("next announce never scheduled an interval ahead")
		}
		time.Sleep(5 * time.Millisecond)
	}
	at, err := w.Reannounce()
	if err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	first := log.at[0]
	log.mu.Unlock()
	if at.Before(first.Add(time.Second - 50*time.Millisecond)) {
		t.Errorf("reannounce due at %v, before the tracker's min interval after %v", at, first)
	}
	if ev := log.wait(t); ev != "none" {
		t.Fatalf("reannounce sent %q", ev)
	}
	log.mu.Lock()
	gap := log.at[1].Sub(log.at[0])
	log.mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Errorf("reannounce came %v after the last announce; min interval is 1 s", gap)
	}
	if _, err := newSessionSwarm(t, s).Reannounce(); err == nil {
		t.Error("reannounce of a torrent without trackers succeeded")
	}
}

func newSessionSwarm(t *testing.T, s *Session) *Swarm {
	w, err := s.Join([20]byte{0xee}, SwarmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestBackoffRecovers(t *testing.T) {
	log := newAnnounceLog(3600, 0)
	log.failN = 3
	srv := httptest.NewServer(log)
	defer srv.Close()
	s := newSession(t, Config{AnnounceRetry: 20 * time.Millisecond})
	if _, err := s.Join([20]byte{5}, SwarmOptions{Trackers: [][]string{{srv.URL + "/announce"}}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"failed:started", "failed:started", "failed:started", "started"}
	for i, w := range want {
		if ev := log.wait(t); ev != w {
			t.Fatalf("announce %d = %q, want %q (started is repeated until it gets through)", i, ev, w)
		}
	}
}

func TestGateLimits(t *testing.T) {
	g := newGate(3, 2)
	a := netip.MustParseAddrPort("192.0.2.1:1")
	b := netip.MustParseAddrPort("192.0.2.1:2")
	c := netip.MustParseAddrPort("192.0.2.1:3")
	d := netip.MustParseAddrPort("198.51.100.7:1")
	lo := netip.MustParseAddrPort("127.0.0.1:9")
	if !g.Admit(a) || !g.Admit(b) {
		t.Fatal("first two from one IP refused")
	}
	if g.Admit(c) {
		t.Fatal("third connection from one IP admitted over the per-IP limit")
	}
	if !g.Admit(d) {
		t.Fatal("another IP refused under the global limit")
	}
	if g.Admit(lo) {
		t.Fatal("admitted over the global limit")
	}
	g.Release(a)
	if !g.Admit(c) {
		t.Fatal("refused after a slot of its IP was freed")
	}
	g.Release(b)
	g.Release(c)
	g.Release(d)
	for range 3 {
		if !g.Admit(lo) {
			t.Fatal("loopback refused: it is exempt from the per-IP limit")
		}
	}
	if total, ips := g.counts(); total != 3 || ips != 0 {
		t.Errorf("counts %d, %d", total, ips)
	}
}

// handshakeStart dials the session and sends the first part of a
// handshake for ih; it returns the connection.
func handshakeStart(t *testing.T, s *Session, ih [20]byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var h peerwire.Handshake
	h.InfoHash, h.PeerID = ih, [20]byte{9}
	if err := peerwire.WriteHandshake(c, h); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByPeer reports whether c is closed by the other side within 10 s.
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	return err != nil && !os.IsTimeout(err)
}

func TestListenerRefusesUnknownAndUnwoken(t *testing.T) {
	s := newSession(t, Config{})
	if !closedByPeer(handshakeStart(t, s, [20]byte{0x77})) {
		t.Error("connection for an unknown torrent kept open")
	}
	woken := make(chan struct{}, 1)
	if _, err := s.Join([20]byte{0x78}, SwarmOptions{Wake: func() bool { woken <- struct{}{}; return false }}); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(handshakeStart(t, s, [20]byte{0x78})) {
		t.Error("connection for a swarm that refused to wake kept open")
	}
	select {
	case <-woken:
	default:
		t.Error("Wake not called for an incoming connection")
	}
}

// writeTorrent makes a torrent of one random file of size bytes in dir
// (announcing to trackerURL if not empty) and returns it and the data.
func writeTorrent(t *testing.T, dir string, size int, trackerURL string, private bool) (*metainfo.MetaInfo, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	o := metainfo.BuildOptions{PieceLength: 32 << 10, Private: private}
	if trackerURL != "" {
		o.Trackers = []string{trackerURL}
	}
	mi, err := metainfo.Build(t.Context(), path, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return mi, data
}

// startTracker runs Sower's tracker on loopback for the test and returns
// its announce URL.
func startTracker(t *testing.T) string {
	t.Helper()
	trk, err := trackerserver.New(trackerserver.Config{
		Interval:    trackerserver.Duration(time.Hour),
		MinInterval: trackerserver.Duration(time.Second),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		trk.Serve(ctx, []net.Listener{ln}, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String() + "/announce"
}

func scrape(t *testing.T, announce string, ih [20]byte) tracker.ScrapeStats {
	t.Helper()
	res, err := (&tracker.Client{}).Scrape(t.Context(), announce, [][20]byte{ih})
	if err != nil {
		t.Fatal(err)
	}
	return res[ih]
}

// TestDownloadThroughTracker runs a seed and a leecher, each in a session
// of its own, that meet only through a tracker; the seed, complete at
// start, must not count as a download at the tracker, the leecher must.
func TestDownloadThroughTracker(t *testing.T) {
	announce := startTracker(t)
	seedDir := t.TempDir()
	mi, data := writeTorrent(t, seedDir, 1<<20+12345, announce, false)

	seedSess := newSession(t, Config{})
	seed, err := seedSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: seedDir})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	if !seed.Have().Full() {
		t.Fatal("seed data failed its check")
	}
	waitFor(t, "the seed announced", func() bool {
		st := seed.Swarm().Trackers()
		return len(st) == 1 && st[0].LastOK
	})
	if st := scrape(t, announce, mi.InfoHash); st.Downloaded != 0 || st.Complete != 1 {
		t.Fatalf("after the seed started: scrape %+v, want downloaded=0 complete=1 (a seed complete at start sends no completed)", st)
	}

	leechDir := t.TempDir()
	leechSess := newSession(t, Config{})
	leech, err := leechSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: leechDir})
	if err != nil {
		t.Fatal(err)
	}
	defer leech.Close()
	select {
	case <-leech.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("download did not complete: %+v", leech.Stats())
	}
	got, err := os.ReadFile(filepath.Join(leechDir, "data.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded data differs (err %v)", err)
	}
	// Each side told the other the address it sees it at (BEP 10 yourip).
	if ip := leechSess.ExternalIP(); ip != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("leecher's external address %v, want 127.0.0.1 from the seed's yourip", ip)
	}
	waitFor(t, "the tracker counted one download", func() bool {
		return scrape(t, announce, mi.InfoHash).Downloaded == 1
	})
	if err := leech.Close(); err != nil {
		t.Fatal(err)
	}
	if err := seed.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both left the swarm (stopped)", func() bool {
		st := scrape(t, announce, mi.InfoHash)
		return st.Complete == 0 && st.Incomplete == 0
	})
}

// waitFor polls cond until it holds, failing after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestListenAddressAndErrors(t *testing.T) {
	s := newSession(t, Config{Listen: "127.0.0.1:0"})
	if !strings.HasPrefix(s.Addr().String(), "127.0.0.1:") || s.Port() == 0 {
		t.Errorf("listening on %v", s.Addr())
	}
	if _, err := New(Config{Listen: "nonsense", NoDHT: true}); err == nil {
		t.Error("bad listen address accepted")
	}
	if _, err := New(Config{Listen: s.Addr().String(), NoDHT: true}); err == nil {
		t.Error("a busy port accepted")
	}
}

// TestCompletedThenCloseSendsBoth: a download that finishes and exits at
// once (sower get) still tells the tracker "completed", then "stopped".
func TestCompletedThenCloseSendsBoth(t *testing.T) {
	log := newAnnounceLog(3600, 0)
	srv := httptest.NewServer(log)
	defer srv.Close()
	s, err := New(Config{Listen: "127.0.0.1:0", NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Join([20]byte{6}, SwarmOptions{Trackers: [][]string{{srv.URL + "/announce"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := log.wait(t); ev != "started" {
		t.Fatalf("first announce %q", ev)
	}
	waitFor(t, "the started announce recorded", func() bool { return w.Trackers()[0].LastOK })
	w.Completed()
	w.Leave()
	s.Close()
	evs := log.snapshot()
	if len(evs) != 3 || evs[1] != "completed" || evs[2] != "stopped" {
		t.Fatalf("events %v, want started, completed, stopped", evs)
	}
}

func TestExternalVotes(t *testing.T) {
	var v externalVotes
	if v.best().IsValid() {
		t.Fatal("an address with no votes")
	}
	a, b := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("198.51.100.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	v.vote("peer 1", v6)
	v.vote("peer 2", v6)
	v.vote("peer 3", b)
	if got := v.best(); got != b {
		t.Fatalf("best %v: IPv4 goes first", got)
	}
	v.vote("peer 4", a)
	v.vote("tracker x", a)
	v.vote("peer 3", a) // a source's latest word replaces its first
	if got := v.best(); got != a {
		t.Fatalf("best %v, want the majority %v", got, a)
	}
	v.vote("peer 5", netip.Addr{})
	v.vote("peer 6", netip.IPv4Unspecified())
	for i := range maxVoters {
		v.vote(fmt.Sprintf("flood %d", i), b)
	}
	if got := v.best(); got != b {
		t.Fatalf("best %v after a flood of sources", got)
	}
	if len(v.votes) != maxVoters || len(v.order) != maxVoters {
		t.Fatalf("%d votes, %d sources kept; bound %d", len(v.votes), len(v.order), maxVoters)
	}
}

// deadAddrs returns n loopback addresses on which nothing listens.
func deadAddrs(t *testing.T, n int) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, netip.MustParseAddrPort(l.Addr().String()))
		l.Close()
	}
	return out
}

// TestStarvedLeecherAnnouncesEarly: a tracker whose first answers list
// only dead peers, and 10 s later a live seed, with an interval of 30
// minutes and a min interval of 5 s. The leecher, left with no peer,
// announces again at the min interval instead of the interval, finds the
// seed and completes well within 30 s.
func TestStarvedLeecherAnnouncesEarly(t *testing.T) {
	seedDir := t.TempDir()
	mi, _ := writeTorrent(t, seedDir, 300_000, "", false)
	seedSess := newSession(t, Config{})
	seed, err := seedSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: seedDir})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	seedAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), seedSess.Port())

	dead := deadAddrs(t, 7)
	start := time.Now()
	var mu sync.Mutex
	var announces []time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/announce") {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		announces = append(announces, time.Since(start))
		mu.Unlock()
		peers := dead
		if time.Since(start) > 10*time.Second {
			peers = append([]netip.AddrPort{seedAddr}, dead...)
		}
		var compact []byte
		for _, p := range peers {
			compact = append(compact, p.Addr().AsSlice()...)
			compact = append(compact, byte(p.Port()>>8), byte(p.Port()))
		}
		fmt.Fprintf(w, "d8:intervali1800e12:min intervali5e5:peers%d:%se", len(compact), compact)
	}))
	defer srv.Close()
	mi.Announce, mi.AnnounceList = srv.URL+"/announce", nil

	leechSess := newSession(t, Config{})
	leech, err := leechSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer leech.Close()
	select {
	case <-leech.Done():
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the leecher did not complete within 30 s; announces at %v", announces)
	}
	mu.Lock()
	n := len(announces)
	mu.Unlock()
	if n < 2 || n > 5 {
		t.Errorf("%d announces; want the first, one or two early ones, and no more often than the min interval", n)
	}
}

// TestCompletedOnceOnExit: a download that exits as soon as it completes
// (sower get) sends exactly one "completed" and one "stopped": an announce
// under way when the session closes is let finish, not cut off and sent
// again.
func TestCompletedOnceOnExit(t *testing.T) {
	for range 5 {
		log := newAnnounceLog(5, 0)
		srv := httptest.NewServer(log)
		seedDir := t.TempDir()
		mi, _ := writeTorrent(t, seedDir, 1<<20, srv.URL+"/announce", false)
		seedSess := newSession(t, Config{})
		seed, err := seedSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: seedDir})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Listen: "127.0.0.1:0", NoDHT: true})
		if err != nil {
			t.Fatal(err)
		}
		seedAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), seedSess.Port())
		leech, err := s.AddTorrent(t.Context(), mi, TorrentOptions{Dir: t.TempDir(), Peers: []netip.AddrPort{seedAddr}})
		if err != nil {
			t.Fatal(err)
		}
		<-leech.Done()
		leech.Close()
		s.Close()
		seed.Close()
		seedSess.Close()
		srv.Close()
		count := map[string]int{}
		for _, e := range log.snapshot() {
			count[e]++
		}
		if count["completed"] != 1 || count["started"] != 2 || count["stopped"] != 2 {
			t.Fatalf("events %v: want two started, one completed, two stopped", log.snapshot())
		}
	}
}
