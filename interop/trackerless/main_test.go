package trackerless

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// binEnv passes the path of the sower binary built by TestMain to the
// tests without a package-level variable. Set beforehand, it names a
// binary to test instead (a release build, or one built with
// `go build -overlay` to try a fix in cmd/sower).
const binEnv = "SOWER_TRACKERLESS_BIN"

// verboseEnv shows sower's log tails of passing tests too.
const verboseEnv = "SOWER_INTEROP_VERBOSE"

// testTimeout bounds each test's waits as a whole.
const testTimeout = 3 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain builds the sower binary once for the run and removes it after.
func runMain(m *testing.M) int {
	if os.Getenv(binEnv) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sower-trackerless")
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

// sower is one running sower command, its stdout and stderr in a log file.
// The end of the test kills it if it still runs.
type sower struct {
	name    string
	log     string
	started time.Time     // just before the process was started
	done    chan struct{} // closed once the process has exited
	err     error         // exit status, set before done is closed
	cmd     *exec.Cmd
}

// startSower runs the sower binary with -v and args. If firstLine is not
// nil, it receives the first line of stdout (stdout then also goes to the
// log).
func startSower(t testing.TB, name string, firstLine chan<- string, args ...string) *sower {
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
	cmd := exec.Command(bin, append([]string{"-v"}, args...)...)
	cmd.Stderr = f
	var scan *bufio.Scanner
	if firstLine == nil {
		cmd.Stdout = f
	} else {
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		scan = bufio.NewScanner(out)
	}
	s := &sower{name: name, log: logPath, done: make(chan struct{}), cmd: cmd, started: time.Now()}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start sower %s: %v", name, err)
	}
	go func() {
		if scan != nil {
			first := true
			for scan.Scan() {
				if first {
					firstLine <- scan.Text()
					first = false
				}
				fmt.Fprintln(f, scan.Text())
			}
		}
		s.err = cmd.Wait()
		f.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() || os.Getenv(verboseEnv) != "" {
			t.Logf("sower %s (%s) log tail:\n%s", name, strings.Join(args, " "), s.tail(40))
		}
	})
	return s
}

// tail returns the last n lines of the log.
func (s *sower) tail(n int) string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// wait returns the exit status, or an error once ctx ends first.
func (s *sower) wait(ctx context.Context) error {
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return fmt.Errorf("sower %s still running: %w", s.name, ctx.Err())
	}
}

// logTime is the time attribute of slog's text handler.
var logTime = regexp.MustCompile(`^time=(\S+) `)

// when returns how long after the process started the first log line
// matching re was written, from the line's own timestamp.
func (s *sower) when(re *regexp.Regexp) (time.Duration, bool) {
	f, err := os.Open(s.log)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !re.MatchString(line) {
			continue
		}
		m := logTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		return at.Sub(s.started), true
	}
	return 0, false
}

// matches reports whether any log line so far matches re.
func (s *sower) matches(re *regexp.Regexp) bool {
	_, ok := s.when(re)
	return ok
}

// waitLog waits until a log line matches re, or fails the test when ctx
// ends or the process exits first.
func (s *sower) waitLog(t testing.TB, ctx context.Context, re *regexp.Regexp) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, ok := s.when(re); ok {
			return
		}
		select {
		case <-s.done:
			if _, ok := s.when(re); ok {
				return
			}
			t.Fatalf("sower %s exited (%v) before logging %q", s.name, s.err, re)
		case <-ctx.Done():
			t.Fatalf("sower %s: no log line %q: %v", s.name, re, ctx.Err())
		case <-tick.C:
		}
	}
}

// startDHTNode starts a standalone `sower dht` node on 127.0.0.1 with rate
// limits off (every node of the test shares one IP) and returns its
// address, the bootstrap node of the test's private DHT.
func startDHTNode(t testing.TB) string {
	t.Helper()
	first := make(chan string, 1)
	node := startSower(t, "dht", first, "dht", "--listen", "127.0.0.1:0", "--rate-limit", "0")
	select {
	case line := <-first:
		// "listening on ADDR id HEX"
		f := strings.Fields(line)
		if len(f) != 5 || f[0] != "listening" || f[1] != "on" || f[3] != "id" {
			t.Fatalf("sower dht: unexpected first line %q", line)
		}
		return f[2]
	case <-node.done:
		t.Fatalf("sower dht exited: %v\n%s", node.err, node.tail(20))
	case <-time.After(20 * time.Second):
		t.Fatal("sower dht did not report its address within 20s")
	}
	return ""
}
