package testpeers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stopGrace is how long a program may take to shut down cleanly (announce
// "stopped", save resume data) before its process group is killed.
const stopGrace = 5 * time.Second

// VerboseEnv names the environment variable that shows each program's
// log tail at the end of every test, not only of failed ones.
const VerboseEnv = "TESTPEERS_VERBOSE"

// logTailLines is how much of a program's log a failing test shows.
const logTailLines = 40

// process is one running third-party program in its own process group,
// with stdout and stderr captured in a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	stdin   io.WriteCloser // nil unless the program is driven through stdin

	done    chan struct{} // closed once the program has exited and its output is drained
	exitErr error         // set before done is closed

	stopOnce sync.Once
}

// startProcess starts cmd with its output in a log file under a fresh
// t.TempDir. If onLine is not nil, each stdout line is also passed to it
// (from one goroutine, in order). If withStdin is set, the program's stdin is
// a pipe that stop closes first, as a request to exit. The process is
// stopped, and on failure its log tail is shown, when the test ends.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, onLine func(string), withStdin bool) *process {
	t.Helper()
	// Registered first so that it is removed only after the process is gone.
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: create log: %v", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	fmt.Fprintf(logFile, "$ %s\n", strings.Join(cmd.Args, " "))
	cmd.SysProcAttr = newProcAttr()
	cmd.Stderr = logFile

	var stdout io.ReadCloser
	if onLine == nil {
		cmd.Stdout = logFile
	} else if stdout, err = cmd.StdoutPipe(); err != nil {
		logFile.Close()
		t.Fatalf("%s: stdout pipe: %v", name, err)
	}
	if withStdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			logFile.Close()
			t.Fatalf("%s: stdin pipe: %v", name, err)
		}
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("%s: start %s: %v", name, cmd.Path, err)
	}

	go func() {
		defer close(p.done)
		defer logFile.Close()
		if stdout != nil {
			// Exec requires all reads from the pipe to finish before Wait.
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				fmt.Fprintln(logFile, line)
				onLine(line)
			}
			// Keep draining so the program never blocks on a full pipe.
			_, _ = io.Copy(logFile, stdout)
		}
		p.exitErr = cmd.Wait()
	}()

	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv(VerboseEnv) != "" {
			t.Logf("%s: last lines of %s:\n%s", name, logPath, tailFile(logPath, logTailLines))
		}
	})
	return p
}

// exited reports whether the program has exited, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		if p.exitErr == nil {
			return true, fmt.Errorf("%s exited", p.name)
		}
		return true, fmt.Errorf("%s exited: %w", p.name, p.exitErr)
	default:
		return false, nil
	}
}

// signal sends sig to the program itself (not its group).
func (p *process) signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	return nil
}

// stop asks the program to exit (closing stdin, or SIGTERM to its group),
// kills the group after stopGrace, and returns once it has exited. Calling it
// again is harmless.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		if p.stdin != nil {
			p.stdin.Close()
		} else {
			terminateGroup(p.cmd.Process)
		}
		select {
		case <-p.done:
		case <-time.After(stopGrace):
		}
		// Also reaps anything the program left behind in its group.
		killGroup(p.cmd.Process)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			// Unreachable unless the kernel is stuck; do not hang the test.
		}
	})
}

// tailFile returns the last n lines of the file at path, or a note on why
// it cannot.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	const maxTail = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		if _, err := f.Seek(-maxTail, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read log: %v)", err)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTail))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
