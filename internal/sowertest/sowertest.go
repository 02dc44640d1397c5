// Package sowertest holds what the interop test packages share to run the
// real sower binary: building it once, running it as a subprocess whose
// output goes to a log file that the test can follow, and small file and
// log helpers. It lives outside the test packages (as a normal package) so
// that each of them can import it instead of keeping its own copy.
package sowertest

import (
	"bufio"
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
	"testing"
	"time"
)

// VerboseEnv, when set, shows the log tail of every sower process at the
// end of its test, not only of failed tests.
const VerboseEnv = "SOWER_INTEROP_VERBOSE"

// cmdPath is the sower command's import path: building by import path
// works from any package folder of the module.
const cmdPath = "github.com/sowerbt/sower/cmd/sower"

// Build compiles the sower command into dir and returns the binary's
// path, so that a TestMain builds it once for all the tests of a package.
func Build(dir string) (bin string, err error) {
	bin = filepath.Join(dir, "sower")
	out, err := exec.Command("go", "build", "-o", bin, cmdPath).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", cmdPath, err, out)
	}
	return bin, nil
}

// Proc is one running sower command whose stdout and stderr go to a log
// file. The end of the test kills it if it still runs, and shows the log's
// tail if the test failed (or VerboseEnv is set).
type Proc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	started time.Time     // just before the process was started
	done    chan struct{} // closed once the process has exited
	err     error         // exit status, valid once done is closed
}

// Start runs bin with -v and args (-v so that tests can follow what sower
// does). name labels the process in messages and names its log file.
// `get` and `seed` get --no-dht unless args hold --no-dht or
// --dht-bootstrap: they would otherwise join the public DHT through its
// bootstrap routers, and tests stay on loopback.
func Start(t testing.TB, bin, name string, args ...string) *Proc {
	t.Helper()
	return StartLines(t, bin, name, nil, args...)
}

// StartLines is Start that also hands each line sower writes on stdout to
// stdoutLine (when not nil), in order, before writing it to the log: for a
// command that reports something on stdout that the test must act on at
// once, such as the address `sower dht` listens on. stdoutLine runs on a
// goroutine of the Proc.
func StartLines(t testing.TB, bin, name string, stdoutLine func(line string), args ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args = noDHT(args)
	cmd := exec.Command(bin, append([]string{"-v"}, args...)...)
	cmd.Stderr = f
	var stdout io.Reader
	if stdoutLine == nil {
		cmd.Stdout = f
	} else {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			f.Close()
			t.Fatal(err)
		}
	}
	p := &Proc{name: name, cmd: cmd, log: logPath, started: time.Now(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start sower %s: %v", name, err)
	}
	go func() {
		if stdout != nil {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				stdoutLine(sc.Text())
				fmt.Fprintln(f, sc.Text())
			}
		}
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
		if t.Failed() || os.Getenv(VerboseEnv) != "" {
			t.Logf("sower %s (%s) log tail:\n%s", name, strings.Join(args, " "), p.Tail(40))
		}
	})
	return p
}

// noDHT returns args with --no-dht after a `get`, `seed` or `daemon`
// command that names neither --no-dht nor --dht-bootstrap, so tests never
// reach for the public DHT routers.
func noDHT(args []string) []string {
	if len(args) > 0 && (args[0] == "get" || args[0] == "seed" || args[0] == "daemon") &&
		!slices.Contains(args, "--no-dht") && !slices.Contains(args, "--dht-bootstrap") {
		return append([]string{args[0], "--no-dht"}, args[1:]...)
	}
	return args
}

// LogPath returns the log file's path, for readers that go line by line.
func (p *Proc) LogPath() string { return p.log }

// Started returns the time just before the process was started, to date
// its log lines relative to its start.
func (p *Proc) Started() time.Time { return p.started }

// Done returns a channel closed once the process has exited, for tests
// that wait on it together with other events.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the exit status once the process has exited, and nil while
// it runs.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Tail returns the last n lines of the log (or why it cannot be read),
// for failure messages.
func (p *Proc) Tail(n int) string {
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

// Output returns the whole log so far.
func (p *Proc) Output(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Wait returns the exit status once the process exits, or an error when
// ctx ends first (the process is left running).
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("sower %s still running: %w", p.name, ctx.Err())
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process; a process that has already ended is
// not an error.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal sower %s: %v", p.name, err)
	}
}

// WaitLog polls the log until re matches it and returns the first match's
// submatches, failing the test if the process exits or ctx ends first.
func (p *Proc) WaitLog(t testing.TB, ctx context.Context, re *regexp.Regexp) []string {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(p.Output(t)); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.Output(t)); m != nil {
				return m
			}
			t.Fatalf("sower %s exited (%v) before logging %q", p.name, p.err, re)
		case <-ctx.Done():
			t.Fatalf("sower %s: no %q in its log: %v", p.name, re, ctx.Err())
		case <-tick.C:
		}
	}
}

// ExitOK waits (bounded by d) for the process to exit with status 0, and
// fails the test otherwise.
func (p *Proc) ExitOK(t testing.TB, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("sower %s: %v", p.name, err)
	}
}

// CopyTree copies the regular files and folders under src to dst, so that
// a seeder or server gets its own copy of the data that it (or the test)
// may alter without touching the original the results are compared with.
func CopyTree(t testing.TB, src, dst string) {
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

// HasLine reports whether one line of log contains every one of parts:
// log lines carry their facts as separate attributes, in an order the
// tests need not know.
func HasLine(log string, parts ...string) bool {
	for line := range strings.SplitSeq(log, "\n") {
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

// Main is a test package's TestMain body: it builds the sower binary once
// for the whole run into a temporary folder (unless env already names a
// binary, to test another build), passes its path to the tests in env,
// runs them and removes the binary. It returns the exit code.
func Main(m *testing.M, env string) int {
	if os.Getenv(env) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sower-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv(env, bin)
	return m.Run()
}

// Bin returns the binary Main built (the path in env).
func Bin(t testing.TB, env string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		t.Fatal("sower binary not built (TestMain did not run sowertest.Main)")
	}
	return bin
}
