package testpeers

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
	"testing"
	"time"
)

//go:embed libtorrent_peer.py
var libtorrentScript []byte

// startWait bounds how long a program may take to start listening.
const startWait = 20 * time.Second

// LibtorrentSeed starts a libtorrent (python3-libtorrent) peer that checks
// the torrent's data in dataDir and then seeds it. It dials every peer
// given (host:port), and Connect can add more later. Wait returns once the
// check is done and it is seeding; it fails if the data is incomplete.
func LibtorrentSeed(t testing.TB, torrent, dataDir string, peers ...string) *Peer {
	t.Helper()
	return startPlainLibtorrent(t, "seed", torrent, dataDir, peers)
}

// LibtorrentGet starts a libtorrent peer that downloads the torrent into
// outDir, from peers it gets from the torrent's trackers and from the given
// peers (host:port), which it dials. Wait returns once every piece is in and
// hash-checked; it keeps seeding afterwards until Stop.
func LibtorrentGet(t testing.TB, torrent, outDir string, peers ...string) *Peer {
	t.Helper()
	return startPlainLibtorrent(t, "get", torrent, outDir, peers)
}

// ltState is what the script has reported so far: the lines every mode of
// the script writes.
type ltState struct {
	mu       sync.Mutex
	port     int
	stats    Stats
	complete bool
	err      error
	portSeen chan struct{} // closed on the "port" line
}

// line takes one line of the script's stdout.
func (s *ltState) line(l string) {
	word, rest, _ := strings.Cut(l, " ")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch word {
	case "port":
		if n, err := strconv.Atoi(rest); err == nil && s.port == 0 {
			s.port = n
			close(s.portSeen)
		}
	case "status":
		s.stats = parseLtStatus(rest, s.stats)
	case "complete":
		s.complete = true
	case "error":
		if s.err == nil {
			s.err = errors.New("libtorrent: " + rest)
		}
	}
}

// parseLtStatus reads the fields of a "status k=v ..." line over the
// previous stats.
func parseLtStatus(fields string, st Stats) Stats {
	for _, f := range strings.Fields(fields) {
		k, v, _ := strings.Cut(f, "=")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "state":
			st.State = v
		case "done":
			st.Done = n
		case "total":
			st.Total = n
		case "downloaded":
			st.Downloaded = n
		case "uploaded":
			st.Uploaded = n
		case "peers":
			st.Peers = int(n)
		}
	}
	return st
}

// newLtState returns an ltState waiting for the "port" line.
func newLtState() *ltState {
	return &ltState{portSeen: make(chan struct{})}
}

// peerFlags are the script's flags that make it dial each of peers.
func peerFlags(peers []string) []string {
	var flags []string
	for _, p := range peers {
		flags = append(flags, "--peer", p)
	}
	return flags
}

func startPlainLibtorrent(t testing.TB, mode, torrent, dir string, peers []string) *Peer {
	t.Helper()
	state := newLtState()
	return startLibtorrent(t, "libtorrent-"+mode, peerFlags(peers), mode, torrent, dir, state, state.line)
}

// startLibtorrent runs the script as name with flags (see the script's
// usage) in mode on source, saving into dir, and waits until it listens.
// Each stdout line goes to line, which must pass the lines of the plain
// script on to state; the returned Peer reads its port and stats there.
func startLibtorrent(t testing.TB, name string, flags []string, mode, source, dir string, state *ltState, line func(string)) *Peer {
	t.Helper()
	python := needLibtorrent(t)
	work := t.TempDir()
	script := filepath.Join(work, "libtorrent_peer.py")
	if err := os.WriteFile(script, libtorrentScript, 0o644); err != nil {
		t.Fatalf("libtorrent: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("libtorrent: %v", err)
	}

	args := append([]string{"-u", script}, flags...)
	args = append(args, mode, source, dir)
	proc := startProcess(t, name, exec.Command(python, args...), line, true)

	select {
	case <-state.portSeen:
	case <-proc.done:
		t.Fatalf("%s exited before listening: %v\n%s", name, proc.exitErr, tailFile(proc.logPath, logTailLines))
	case <-time.After(startWait):
		t.Fatalf("%s did not listen within %v", name, startWait)
	}

	var stdinMu sync.Mutex
	p := &Peer{Name: name, LogPath: proc.logPath, proc: proc}
	state.mu.Lock()
	p.Port = state.port
	state.mu.Unlock()
	p.stats = func(context.Context) (Stats, error) {
		state.mu.Lock()
		defer state.mu.Unlock()
		st := state.stats
		st.Complete = state.complete
		return st, state.err
	}
	p.connect = func(addr string) error {
		stdinMu.Lock()
		defer stdinMu.Unlock()
		if _, err := fmt.Fprintf(proc.stdin, "connect %s\n", addr); err != nil {
			return fmt.Errorf("tell libtorrent: %w", err)
		}
		return nil
	}
	return p
}

// LibtorrentUTP starts a libtorrent peer like LibtorrentSeed (mode "seed")
// or LibtorrentGet (mode "get") that speaks uTP only: TCP off both ways,
// uTP on. Its Port is its UDP port, and it dials the given peers over uTP.
func LibtorrentUTP(t testing.TB, mode, torrent, dir string, peers ...string) *Peer {
	t.Helper()
	if mode != "seed" && mode != "get" {
		t.Fatalf("LibtorrentUTP: mode %q, want seed or get", mode)
	}
	state := newLtState()
	flags := append([]string{"--utp-only"}, peerFlags(peers)...)
	return startLibtorrent(t, "libtorrent-utp-"+mode, flags, mode, torrent, dir, state, state.line)
}
