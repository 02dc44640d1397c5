package webseeds

import (
	"context"
	"fmt"
	"io"
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

	"github.com/sowerbt/sower/internal/testpeers"
)

// binEnv passes the path of the sower binary that TestMain builds to the
// tests without a package-level variable.
const binEnv = "SOWER_WEBSEEDS_BIN"

// verboseEnv shows sower's logs for passing tests too (the same variable
// as package interop's).
const verboseEnv = "SOWER_INTEROP_VERBOSE"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain builds the sower binary once for all tests and removes it after.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sower-webseeds")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "sower")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sower").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ../../cmd/sower: %v\n%s", err, out)
		return 1
	}
	os.Setenv(binEnv, bin)
	return m.Run()
}

// sowerBin returns the binary TestMain built.
func sowerBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(binEnv)
	if bin == "" {
		t.Fatal("sower binary not built (TestMain did not run)")
	}
	return bin
}

// runSower runs a short sower command (create, info) and returns its
// output, failing the test if it does not exit 0 within a minute.
func runSower(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, sowerBin(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sower %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// proc is a running sower command (with -v) whose output goes to a log
// file. The end of the test kills it if it still runs and, if the test
// failed, shows the log's tail.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
	err  error         // exit status, valid once done is closed
}

// startSower starts the sower binary with -v and args.
func startSower(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sowerBin(t), append([]string{"-v"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start sower %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || os.Getenv(verboseEnv) != "" {
			t.Logf("sower %s (%s) log tail:\n%s", name, strings.Join(args, " "), p.tail(40))
		}
	})
	return p
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// output returns the log so far.
func (p *proc) output(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exitOK waits up to d for the process to exit with status 0.
func (p *proc) exitOK(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("sower %s: %v", p.name, p.err)
		}
	case <-time.After(d):
		t.Fatalf("sower %s still running after %v", p.name, d)
	}
}

// waitLog polls the log until re matches and returns the submatches,
// failing the test if the process exits without it or d passes.
func (p *proc) waitLog(t testing.TB, d time.Duration, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(p.output(t)); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.output(t)); m != nil {
				return m
			}
			t.Fatalf("sower %s exited (%v) before logging %q", p.name, p.err, re)
		case <-deadline.C:
			t.Fatalf("sower %s: no %q in its log after %v", p.name, re, d)
		case <-tick.C:
		}
	}
}

// interrupt asks the process to stop as Ctrl-C does and waits up to d.
func (p *proc) interrupt(t testing.TB, d time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		select {
		case <-p.done:
			return
		default:
			t.Fatalf("interrupt sower %s: %v", p.name, err)
		}
	}
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("sower %s did not stop within %v of SIGINT", p.name, d)
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

// hasLine reports whether one line of log contains all of parts.
func hasLine(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// copyTree copies the regular files and folders under src to dst, so that
// a server or a seeder gets its own copy that a test may damage without
// touching the original the download is compared with.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// holder returns a fresh folder holding a copy of src (a file, or a
// torrent's top folder), laid out as seeders, `sower get -o` and web seed
// roots all expect.
func holder(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	copyTree(t, src, filepath.Join(dir, filepath.Base(src)))
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
