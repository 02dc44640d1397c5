package webseeds

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/sowertest"
	"github.com/sowerbt/sower/internal/testpeers"
)

// binEnv passes the path of the sower binary that TestMain builds to the
// tests without a package-level variable.
const binEnv = "SOWER_WEBSEEDS_BIN"

func TestMain(m *testing.M) {
	os.Exit(sowertest.Main(m, binEnv))
}

// runSower runs a short sower command (create, info) and returns its
// output, failing the test if it does not exit 0 within a minute.
func runSower(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, sowertest.Bin(t, binEnv), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sower %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startSower starts the sower binary that TestMain built (see
// sowertest.Start).
func startSower(t testing.TB, name string, args ...string) *sowertest.Proc {
	t.Helper()
	return sowertest.Start(t, sowertest.Bin(t, binEnv), name, args...)
}

// waitLog waits up to d for a line of p's log to match re and returns the
// submatches (see sowertest.Proc.WaitLog).
func waitLog(t testing.TB, p *sowertest.Proc, d time.Duration, re *regexp.Regexp) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.WaitLog(t, ctx, re)
}

// interrupt asks p to stop as Ctrl-C does and waits up to d for it to
// end, whatever its exit status.
func interrupt(t testing.TB, p *sowertest.Proc, d time.Duration) {
	t.Helper()
	p.Signal(t, syscall.SIGINT)
	select {
	case <-p.Done():
	case <-time.After(d):
		t.Fatalf("sower did not stop within %v of SIGINT", d)
	}
}

// completeRe matches the line `sower get` prints on stderr once the
// download is complete and verified.
var completeRe = regexp.MustCompile(`(?m)^\S+: complete in \S+: downloaded (\d+) bytes \((\d+) from web seeds, (\d+) wasted, (\d+) hash failures\)`)

// completion is what the completion line reports.
type completion struct {
	downloaded, web, wasted, hashFailures int64
}

// parseCompletion finds the completion line in a log.
func parseCompletion(t testing.TB, log string) completion {
	t.Helper()
	m := completeRe.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no completion line in sower's output")
	}
	var v [4]int64
	for i := range v {
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil {
			t.Fatalf("completion line %q: field %d: %v", m[0], i+1, err)
		}
		v[i] = n
	}
	return completion{downloaded: v[0], web: v[1], wasted: v[2], hashFailures: v[3]}
}

// holder returns a fresh folder holding a copy of src (a file, or a
// torrent's top folder), laid out as seeders, `sower get -o` and web seed
// roots all expect.
func holder(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	sowertest.CopyTree(t, src, filepath.Join(dir, filepath.Base(src)))
	return dir
}

// hangServer accepts TCP connections on 127.0.0.1 and never answers: a
// web seed that hangs. It holds the connections until the test ends.
type hangServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

// startHangServer starts a hangServer, stopped at the end of the test.
func startHangServer(t testing.TB) *hangServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangServer{ln: ln}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.accepted++
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.wg.Wait()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
	})
	return h
}

// URL returns the server's base URL, ending in "/".
func (h *hangServer) URL() string { return "http://" + h.ln.Addr().String() + "/" }

// Accepted returns how many connections the server has taken.
func (h *hangServer) Accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accepted
}

// waitSeeder waits up to d for a third-party seeder to finish checking
// its data.
func waitSeeder(t testing.TB, p *testpeers.Peer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
}
