//go:build linux

package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed lt_node.py
var ltScript []byte

// ltPython is the interpreter that imports python3-libtorrent (Debian's;
// another python3 earlier on PATH often cannot).
const ltPython = "/usr/bin/python3"

// ltNode is one lt_node.py, driven over its stdin and stdout.
type ltNode struct {
	p *proc

	mu      sync.Mutex
	ready   bool
	errText string
	seq     int
	answers map[int]status
	changed chan struct{}
}

func launchLibtorrent(ctx context.Context, j job) (node, error) {
	if _, err := os.Stat(ltPython); err != nil {
		return nil, fmt.Errorf("libtorrent: %s missing (Debian package python3-libtorrent): %w", ltPython, err)
	}
	l := &ltNode{answers: map[int]status{}, changed: make(chan struct{}, 1)}
	p, err := startProc(j.host, j.dir, "libtorrent", l.line, ltPython, "-u", j.tools.ltScript, j.torrent, j.dir, strconv.Itoa(peerPort))
	if err != nil {
		return nil, err
	}
	l.p = p
	err = waitUntil(ctx, p.name+" start-up", startWait, 50*time.Millisecond, func(context.Context) (bool, error) {
		if err := p.alive(); err != nil {
			return false, err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.errText != "" {
			return false, errors.New(p.name + ": " + l.errText)
		}
		return l.ready, nil
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	return l, nil
}

// line takes one line of the script's output.
func (l *ltNode) line(s string) {
	word, rest, _ := strings.Cut(s, " ")
	l.mu.Lock()
	switch word {
	case "ready":
		l.ready = true
	case "error":
		if l.errText == "" {
			l.errText = rest
		}
	case "stats":
		if n, st, ok := parseLtStats(rest); ok {
			l.answers[n] = st
		}
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// parseLtStats reads "N have=F complete=0|1 up=B down=B".
func parseLtStats(s string) (int, status, bool) {
	f := strings.Fields(s)
	if len(f) != 5 {
		return 0, status{}, false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, status{}, false
	}
	var st status
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "have":
			st.Have, err = strconv.ParseFloat(v, 64)
		case "complete":
			st.Complete = v == "1"
		case "up":
			st.Up, err = strconv.ParseInt(v, 10, 64)
		case "down":
			st.Down, err = strconv.ParseInt(v, 10, 64)
		default:
			return 0, status{}, false
		}
		if err != nil {
			return 0, status{}, false
		}
	}
	return n, st, true
}

func (l *ltNode) start(context.Context) error  { return l.p.send("start") }
func (l *ltNode) pause(context.Context) error  { return l.p.send("pause") }
func (l *ltNode) resume(context.Context) error { return l.p.send("resume") }

func (l *ltNode) status(ctx context.Context) (status, error) {
	l.mu.Lock()
	l.seq++
	n := l.seq
	l.mu.Unlock()
	if err := l.p.send("stats " + strconv.Itoa(n)); err != nil {
		return status{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		l.mu.Lock()
		st, ok := l.answers[n]
		delete(l.answers, n)
		errText := l.errText
		l.mu.Unlock()
		if errText != "" {
			return status{}, errors.New(l.p.name + ": " + errText)
		}
		if ok {
			return st, nil
		}
		if err := l.p.alive(); err != nil {
			return status{}, err
		}
		select {
		case <-l.changed:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return status{}, fmt.Errorf("%s: no stats: %w", l.p.name, ctx.Err())
		}
	}
}

func (l *ltNode) cpu() time.Duration { return l.p.cpu() }
func (l *ltNode) alive() error       { return l.p.alive() }
func (l *ltNode) stop()              { l.p.stop() }
