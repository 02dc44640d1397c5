package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a program gets to exit after SIGTERM before its
// process group is killed.
const stopGrace = 3 * time.Second

// proc is a child program in its own process group, with its output in a
// log file. The benchmark owns it and must call stop.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdinMu sync.Mutex
	done    chan struct{} // closed when the program has exited
	waitErr error         // valid after done
}

// startProc starts cmd with stdout and stderr in dir/name.log. When lines
// is not nil, stdout is also split into lines and handed to it (from one
// goroutine that ends when the program closes stdout).
func startProc(dir, name string, cmd *exec.Cmd, lines func(string)) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	cmd.SysProcAttr = procAttr()
	cmd.Stderr = logf
	var pipeDone chan struct{}
	if lines != nil {
		out, err := cmd.StdoutPipe()
		if err != nil {
			logf.Close()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		pipeDone = make(chan struct{})
		go func() {
			defer close(pipeDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				fmt.Fprintln(logf, sc.Text())
				lines(sc.Text())
			}
		}()
	} else {
		cmd.Stdout = logf
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		if pipeDone != nil {
			<-pipeDone
		}
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// send writes one line to the program's stdin.
func (p *proc) send(line string) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("%s: write %q: %w", p.name, line, err)
	}
	return nil
}

// exited reports whether the program has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop asks the program to exit (stdin closed, SIGTERM to its group) and
// kills the group if it has not exited within stopGrace. It returns once
// the program has exited and may be called more than once.
func (p *proc) stop() {
	if gone, _ := p.exited(); gone {
		return
	}
	p.stdinMu.Lock()
	p.stdin.Close()
	p.stdinMu.Unlock()
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

// procs stops a group of programs together.
type procs []*proc

// stopAll stops every program, in parallel, and waits for all of them.
func (ps procs) stopAll() {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// errExited says a program ended before the benchmark was done with it.
var errExited = errors.New("program exited early")

// checkAlive returns an error naming the program and its log if it exited.
func (p *proc) checkAlive() error {
	if gone, err := p.exited(); gone {
		return fmt.Errorf("%s: %w (%v); see %s", p.name, errExited, err, p.logPath)
	}
	return nil
}
