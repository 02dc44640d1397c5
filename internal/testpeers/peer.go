package testpeers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// DefaultWaitTimeout bounds Peer.Wait when its context has no deadline.
const DefaultWaitTimeout = 3 * time.Minute

// pollInterval is how often Wait asks a program for its state.
const pollInterval = 100 * time.Millisecond

// ErrUnsupported is returned by Peer methods the program cannot do.
var ErrUnsupported = errors.New("not supported by this program")

// Stats is a program's view of its one torrent.
type Stats struct {
	// Complete is true once every piece is present and hash-checked by the
	// program itself.
	Complete bool
	// Done and Total are bytes of verified data held, and the torrent's size.
	Done, Total int64
	// Downloaded and Uploaded count payload bytes since the program started.
	Downloaded, Uploaded int64
	// Peers is the number of peer connections open now.
	Peers int
	// State is the program's own word for what it is doing ("seeding", ...).
	State string
}

func (s Stats) String() string {
	return fmt.Sprintf("state=%s done=%d/%d downloaded=%d uploaded=%d peers=%d complete=%v",
		s.State, s.Done, s.Total, s.Downloaded, s.Uploaded, s.Peers, s.Complete)
}

// Peer is a running third-party BitTorrent program with one torrent,
// listening on 127.0.0.1:Port. It runs until Stop or the end of the test.
type Peer struct {
	// Name says which program and role, e.g. "aria2c-seed"; it names the log.
	Name string
	// Port is the TCP port the program accepts peers on, at 127.0.0.1.
	Port int
	// LogPath is the file holding the program's output.
	LogPath string

	proc    *process
	stats   func(ctx context.Context) (Stats, error) // the program's state now
	connect func(addr string) error                  // nil if the program cannot dial on request
}

// Addr returns the peer's listening address, "127.0.0.1:Port".
func (p *Peer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// Stats asks the program for its current state. It fails if the program
// has exited or reported an error.
func (p *Peer) Stats(ctx context.Context) (Stats, error) {
	if gone, err := p.proc.exited(); gone {
		return Stats{}, err
	}
	st, err := p.stats(ctx)
	if err != nil {
		return st, fmt.Errorf("%s: %w", p.Name, err)
	}
	return st, nil
}

// Wait returns nil once the program holds the whole torrent, verified by
// its own hash checks: for a seeder, once it has checked its data and is
// seeding; for a leecher, once the download is complete. It returns an
// error if the program exits or reports an error first, or when ctx ends
// (after DefaultWaitTimeout if ctx has no deadline); the error includes the
// last state seen.
func (p *Peer) Wait(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultWaitTimeout)
		defer cancel()
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last Stats
	for {
		st, err := p.Stats(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("wait for %s: %w (last %v)", p.Name, err, last)
		case err == nil && st.Complete:
			return nil
		case err == nil:
			last = st
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last %v)", p.Name, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Connect makes the program dial addr (host:port) as a peer for its
// torrent, retrying until connected once. Only libtorrent peers can;
// others return ErrUnsupported.
func (p *Peer) Connect(addr string) error {
	if p.connect == nil {
		return fmt.Errorf("%s: connect to %s: %w", p.Name, addr, ErrUnsupported)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%s: connect: %w", p.Name, err)
	}
	if err := p.connect(addr); err != nil {
		return fmt.Errorf("%s: connect to %s: %w", p.Name, addr, err)
	}
	return nil
}

// Stop ends the program: a clean shutdown if it manages within a few
// seconds, otherwise its process group is killed. It returns once the
// program has exited and is safe to call more than once; the end of the
// test calls it too.
func (p *Peer) Stop() { p.proc.stop() }

// Exited reports whether the program has exited (after Stop, or on its own).
func (p *Peer) Exited() bool {
	gone, _ := p.proc.exited()
	return gone
}
