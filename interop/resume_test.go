package interop

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
)

// throttle is a TCP proxy on 127.0.0.1 in front of a peer. It forwards
// both directions, limits the peer-to-client direction to a byte rate and
// counts what it forwarded that way: an outside view of how much a client
// downloaded, independent of what the client reports.
type throttle struct {
	ln     net.Listener
	target string
	rate   int64 // bytes per second towards the client
	down   atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startThrottle starts a proxy to target; the end of the test stops it and
// waits for its goroutines.
func startThrottle(t testing.TB, target string, rate int64) *throttle {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &throttle{ln: ln, target: target, rate: rate, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is where clients connect.
func (p *throttle) Addr() string { return p.ln.Addr().String() }

// Downloaded is the number of bytes forwarded from the peer so far.
func (p *throttle) Downloaded() int64 { return p.down.Load() }

func (p *throttle) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *throttle) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *throttle) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

// relay forwards one connection until either side closes it.
func (p *throttle) relay(client net.Conn) {
	if !p.track(client) {
		return
	}
	peer, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(peer) {
		client.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(peer, client)
		peer.Close()
	}()
	buf := make([]byte, 16<<10)
	start := time.Now()
	var sent int64
	for {
		n, err := peer.Read(buf)
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
			sent += int64(n)
			p.down.Add(int64(n))
			due := time.Duration(float64(sent) / float64(p.rate) * float64(time.Second))
			if wait := due - time.Since(start); wait > 0 {
				time.Sleep(wait)
			}
		}
		if err != nil {
			break
		}
	}
	client.Close()
	peer.Close()
	<-done
}

// checkedRe reads sower's log of the start-up re-check.
var checkedRe = regexp.MustCompile(`msg="existing data checked" verified_pieces=(\d+) of=(\d+)`)

// TestKillAndResume kills `sower get` with SIGKILL half-way through a
// download and starts it again: the second run must keep the pieces the
// first one verified and fetch only the rest. The seeder (aria2) sits behind
// a throttling proxy, so that the kill lands mid-download and so that the
// proxy measures what each run really downloaded.
func TestKillAndResume(t *testing.T) {
	const size = 32 << 20
	dir := t.TempDir()
	src := filepath.Join(dir, "resume.bin")
	testpeers.RandomFile(t, src, size)
	torrent := testpeers.Mktorrent(t, src, "", pieceLen)
	seed := testpeers.Aria2Seed(t, torrent, seedDir(t, src))
	waitPeer(t, seed, seedReadyWait)
	proxy := startThrottle(t, seed.Addr(), 4<<20)

	out := t.TempDir()
	getArgs := func() []string {
		return []string{"get", "-o", out, "--port", strconv.Itoa(testpeers.FreePort(t)), "--quiet", "--peer", proxy.Addr(), torrent}
	}
	first := startSower(t, "get-1", getArgs()...)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	for allocatedBytes(out) < size/2 {
		if first.Exited() {
			t.Fatalf("first sower get exited (%v) before half the data was on disk", first.Err())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("half the data never reached the disk (%d bytes allocated)", allocatedBytes(out))
		case <-time.After(20 * time.Millisecond):
		}
	}
	first.Signal(t, syscall.SIGKILL)
	err := first.Wait(ctx)
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) {
		t.Fatalf("first sower get after SIGKILL: %v, want killed", err)
	}
	firstDown := proxy.Downloaded()
	t.Logf("killed the first run after %d bytes through the proxy", firstDown)

	second := startSower(t, "get-2", getArgs()...)
	second.ExitOK(t, transferWait)
	testpeers.SameTree(t, src, filepath.Join(out, "resume.bin"))

	m := checkedRe.FindStringSubmatch(second.Output(t))
	if m == nil {
		t.Fatalf("second run logged no %q: it did not re-check the data", checkedRe)
	}
	verified, _ := strconv.Atoi(m[1])
	total, _ := strconv.Atoi(m[2])
	if total != size/pieceLen {
		t.Fatalf("re-check counted %d pieces, want %d", total, size/pieceLen)
	}
	if verified == 0 || verified == total {
		t.Fatalf("re-check kept %d of %d pieces, want some but not all after a kill mid-download", verified, total)
	}
	// What was kept must be about what arrived before the kill: at most the
	// pieces still in flight (a few MiB) may be lost.
	if lost := firstDown - int64(verified)*pieceLen; lost > 8<<20 {
		t.Errorf("first run received %d bytes but only %d pieces (%d bytes) survived the kill", firstDown, verified, int64(verified)*pieceLen)
	}
	secondDown := proxy.Downloaded() - firstDown
	missing := int64(total-verified) * pieceLen
	// The proxy counts protocol overhead too (~0.1%), and a few blocks may be
	// fetched twice; anything near the whole file means the kept pieces were
	// downloaded again.
	if limit := missing + missing/20 + 1<<20; secondDown > limit {
		t.Errorf("second run downloaded %d bytes for %d missing; want at most %d", secondDown, missing, limit)
	}
	t.Logf("second run: %d of %d pieces kept, downloaded %d bytes (%d missing)", verified, total, secondDown, missing)
}
