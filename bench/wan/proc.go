//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sowerbt/sower/internal/wanlab"
)

// stopGrace is how long a program gets after SIGTERM before its group is
// killed.
const stopGrace = 3 * time.Second

// proc is one client program running in a lab host, in its own process
// group, with its output in a log file. Its owner calls stop.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	inMu    sync.Mutex
	done    chan struct{}
	waitErr error
}

// startProc runs name with args in host h (its working folder dir), output
// in dir/LOG.log. lines, when set, receives every stdout line.
func startProc(h *wanlab.Host, dir, log string, lines func(string), name string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, log+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// Not CommandContext: the owner stops it with stop, gracefully.
	cmd := h.Command(context.Background(), name, args...)
	cmd.Dir = dir
	// Pdeathsig survives `ip netns exec`'s exec of the program: a killed
	// benchmark takes its clients along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = logf
	p := &proc{name: h.Name() + "/" + log, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	var out io.ReadCloser
	if lines != nil {
		if out, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, err
		}
	} else {
		cmd.Stdout = logf
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		if out != nil {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				fmt.Fprintln(logf, sc.Text())
				lines(sc.Text())
			}
		}
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// send writes a line to the program's stdin.
func (p *proc) send(line string) error {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// alive returns an error naming the program and its log once it exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited early (%v); see %s", p.name, p.waitErr, p.logPath)
	default:
		return nil
	}
}

// cpu returns the CPU time the program has used so far (user + system,
// its waited-for children included), from /proc.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends with the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// stop closes stdin, sends SIGTERM to the group, kills it after stopGrace,
// and returns once the program has exited.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.inMu.Lock()
	p.stdin.Close()
	p.inMu.Unlock()
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// waitUntil polls cond every interval until it returns true or an error,
// or until d has passed.
func waitUntil(ctx context.Context, what string, d, interval time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
			if !isRetryable(err) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// retryable marks an error that waitUntil keeps polling through (a
// program whose RPC is not up yet).
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func isRetryable(err error) bool {
	_, ok := err.(retryable)
	return ok
}
