package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed lt_peer.py
var ltScript []byte

// ltPython is the interpreter that can import python3-libtorrent (Debian's;
// a python3 earlier on PATH often cannot).
const ltPython = "/usr/bin/python3"

// startWait bounds a program's start-up (listening, checking the data).
const startWait = time.Minute

// ltPeer is one running lt_peer.py.
type ltPeer struct {
	p        *proc
	mu       sync.Mutex
	port     int
	ready    bool
	complete time.Time
	stats    map[string]int64
	errText  string
	changed  chan struct{} // receives (without blocking) on every event
}

// line takes one line of the script's stdout.
func (l *ltPeer) line(s string) {
	word, rest, _ := strings.Cut(s, " ")
	l.mu.Lock()
	switch word {
	case "port":
		l.port, _ = strconv.Atoi(rest)
	case "ready":
		l.ready = true
	case "complete":
		if at, err := parseUnix(rest); err == nil {
			l.complete = at
		}
	case "stats":
		l.stats = parseKV(rest)
	case "error":
		if l.errText == "" {
			l.errText = rest
		}
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// parseUnix reads a wall-clock time in seconds with up to nine decimals,
// exactly (a float64 would lose the microseconds).
func parseUnix(s string) (time.Time, error) {
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || len(frac) > 9 {
		return time.Time{}, fmt.Errorf("time %q: want seconds with up to 9 decimals", s)
	}
	var nsec int64
	if frac != "" {
		if nsec, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil || nsec < 0 {
			return time.Time{}, fmt.Errorf("time %q: want seconds with up to 9 decimals", s)
		}
	}
	return time.Unix(sec, nsec), nil
}

// parseKV reads "k=v k=v" with integer values.
func parseKV(s string) map[string]int64 {
	m := map[string]int64{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			m[k] = n
		}
	}
	return m
}

// waitFor polls cond (under the lock) until it holds, the program fails or
// the deadline passes.
func (l *ltPeer) waitFor(ctx context.Context, what string, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		l.mu.Lock()
		ok, errText := cond(), l.errText
		l.mu.Unlock()
		switch {
		case errText != "":
			return fmt.Errorf("%s: %s", l.p.name, errText)
		case ok:
			return nil
		}
		if err := l.p.checkAlive(); err != nil {
			return err
		}
		select {
		case <-l.changed:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %s: %w; see %s", l.p.name, what, ctx.Err(), l.p.logPath)
		}
	}
}

// runLibtorrent runs the scenario with a libtorrent seed and leechers, one
// process each, on disk in the scenario's folder.
func runLibtorrent(ctx context.Context, sc *Scenario, mode Mode) (Result, error) {
	res := Result{Impl: "libtorrent", Mode: mode, Leechers: sc.Leechers, Size: sc.Size, Ideal: sc.Ideal()}
	if _, err := os.Stat(ltPython); err != nil {
		return res, fmt.Errorf("libtorrent: %s missing (Debian package python3-libtorrent): %w", ltPython, err)
	}
	script := workFile(sc, "lt_peer.py")
	if err := os.WriteFile(script, ltScript, 0o644); err != nil {
		return res, fmt.Errorf("libtorrent: %w", err)
	}
	var all procs
	defer func() { all.stopAll() }()
	start := func(name, mode, dir string, limit int64, superSeed bool) (*ltPeer, error) {
		ss := "0"
		if superSeed {
			ss = "1"
		}
		l := &ltPeer{changed: make(chan struct{}, 1)}
		cmd := exec.Command(ltPython, "-u", script, mode, sc.Torrent, dir, strconv.FormatInt(limit, 10), ss)
		p, err := startProc(sc.Work, name, cmd, l.line)
		if err != nil {
			return nil, err
		}
		l.p = p
		all = append(all, p)
		return l, nil
	}

	seed, err := start("seed", "seed", filepath.Dir(sc.Data), sc.Rate, mode == ModeSuperSeed)
	if err != nil {
		return res, err
	}
	leechers := make([]*ltPeer, sc.Leechers)
	for i := range leechers {
		dir := workFile(sc, fmt.Sprintf("leecher%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return res, err
		}
		if leechers[i], err = start(fmt.Sprintf("leecher%d", i+1), "get", dir, 0, false); err != nil {
			return res, err
		}
	}
	for _, l := range append([]*ltPeer{seed}, leechers...) {
		if err := l.waitFor(ctx, "start-up", startWait, func() bool { return l.ready && l.port != 0 }); err != nil {
			return res, err
		}
	}

	// Release: every leecher is told the seed and the leechers before it
	// at once (the later ones dial it).
	addr := func(l *ltPeer) string { return "127.0.0.1:" + strconv.Itoa(l.port) }
	began := time.Now()
	for i, l := range leechers {
		if err := l.p.send("connect " + addr(seed)); err != nil {
			return res, err
		}
		for _, o := range leechers[:i] {
			if err := l.p.send("connect " + addr(o)); err != nil {
				return res, err
			}
		}
	}
	took := make([]time.Duration, len(leechers))
	for i, l := range leechers {
		left := max(time.Until(began.Add(sc.Timeout)), time.Second)
		if err := l.waitFor(ctx, "completion", left, func() bool { return !l.complete.IsZero() }); err != nil {
			return res, err
		}
		took[i] = l.complete.Sub(began)
	}
	res.summarise(took)

	for _, l := range append([]*ltPeer{seed}, leechers...) {
		l.mu.Lock()
		l.stats = nil
		l.mu.Unlock()
		if err := l.p.send("stats"); err != nil {
			return res, err
		}
	}
	for i, l := range append([]*ltPeer{seed}, leechers...) {
		if err := l.waitFor(ctx, "stats", 10*time.Second, func() bool { return l.stats != nil }); err != nil {
			return res, err
		}
		l.mu.Lock()
		st := l.stats
		l.mu.Unlock()
		if i == 0 {
			res.SeedUp = st["uploaded"]
		}
		res.TotalUp += st["uploaded"]
		res.Wasted += st["redundant"] + st["failed"]
		if st["failed"] > 0 {
			res.Note += fmt.Sprintf("%s: %d bytes failed the hash check; ", l.p.name, st["failed"])
		}
	}
	if res.SeedUp == 0 {
		return res, errors.New("libtorrent: the seed reports no upload")
	}
	return res, nil
}
