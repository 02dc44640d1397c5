package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
)

// binEnv carries the path of the sower binary built by TestMain to the
// tests, so that no package-level variable is needed.
const binEnv = "SOWER_INTEROP_BIN"

// verboseEnv shows sower's logs for passing tests too.
const verboseEnv = "SOWER_INTEROP_VERBOSE"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain builds the sower binary once for the whole run and removes it
// afterwards.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sower-interop")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "sower")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/sower")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ../cmd/sower: %v\n%s", err, out)
		return 1
	}
	os.Setenv(binEnv, bin)
	return m.Run()
}

// sowerProc is one running sower command whose stdout and stderr go to a
// log file. The end of the test kills it if it still runs, and shows the
// log's tail if the test failed.
type sowerProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid once done is closed
}

// startSower runs the sower binary with args (always with -v so that the
// tests can follow what it does).
func startSower(t testing.TB, name string, args ...string) *sowerProc {
	t.Helper()
	bin := os.Getenv(binEnv)
	if bin == "" {
		t.Fatal("sower binary not built (TestMain did not run)")
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Tests stay on loopback: get and seed would otherwise join the public
	// DHT through its bootstrap routers.
	if len(args) > 0 && (args[0] == "get" || args[0] == "seed") && !slices.Contains(args, "--no-dht") && !slices.Contains(args, "--dht-bootstrap") {
		args = append([]string{args[0], "--no-dht"}, args[1:]...)
	}
	cmd := exec.Command(bin, append([]string{"-v"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start sower %s: %v", name, err)
	}
	p := &sowerProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
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
func (p *sowerProc) tail(n int) string {
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

// output returns the whole log so far.
func (p *sowerProc) output(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wait returns the exit status once the process exits, or an error when
// ctx ends first (the process is left running).
func (p *sowerProc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("sower %s still running: %w", p.name, ctx.Err())
	}
}

// exited reports whether the process has ended.
func (p *sowerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *sowerProc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal sower %s: %v", p.name, err)
	}
}

// waitLog polls the log until re matches it and returns the first match,
// failing the test if the process exits or ctx ends first.
func (p *sowerProc) waitLog(t testing.TB, ctx context.Context, re *regexp.Regexp) []string {
	t.Helper()
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
		case <-ctx.Done():
			t.Fatalf("sower %s: no %q in its log: %v", p.name, re, ctx.Err())
		case <-tick.C:
		}
	}
}

// mustExitOK waits (bounded by d) for the process to exit with status 0.
func (p *sowerProc) mustExitOK(t testing.TB, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		t.Fatalf("sower %s: %v", p.name, err)
	}
}

// announcedRe matches sower's debug log of an announce that got through,
// after which a tracker hands its address to other peers.
var announcedRe = regexp.MustCompile(`msg="tracker: announced"`)

// startedRe matches sower's log once its data is checked and it listens.
var startedRe = regexp.MustCompile(`msg=started`)

// copyTree copies the regular files and folders under src to dst, so that
// each seeder has its own copy of the data and cannot alter the original
// that results are compared with.
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

// seedDir makes a private copy of the data at src (a file, or a torrent's
// top folder) in a fresh folder laid out as a seeder expects: the folder
// holds the file or the top folder.
func seedDir(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	copyTree(t, src, filepath.Join(dir, filepath.Base(src)))
	return dir
}

// waitPeer waits (bounded by d) until a third-party peer holds the whole
// torrent.
func waitPeer(t testing.TB, p *testpeers.Peer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
}

// hasLine reports whether the log holds a line containing every one of parts.
func hasLine(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// allocatedBytes sums the disk blocks held by the regular files under root
// (0 if absent), to follow a download's progress on disk even when files
// are created sparse at full length.
func allocatedBytes(root string) int64 {
	var n int64
	_ = filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// completeRe matches the line `sower get` prints once the download is
// complete and verified.
var completeRe = regexp.MustCompile(`(?m)^\S+: complete in `)
