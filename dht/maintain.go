package dht

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sowerbt/sower/bencode"
)

// maintain runs the node's housekeeping until ctx ends: bootstrap when the
// table is low, refresh of buckets unchanged for 15 minutes, liveness
// pings of questionable nodes, expiry of stored peers, state saving.
func (n *Node) maintain(ctx context.Context) {
	n.maintainOnce(ctx)
	tick := time.NewTicker(maintainEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.maintainOnce(ctx)
		}
	}
}

func (n *Node) maintainOnce(ctx context.Context) {
	now := n.now()
	n.mu.Lock()
	low := n.table.size < K && now.Sub(n.lastBootstrap) >= maintainEvery
	hasSeeds := len(n.cfg.Bootstrap) > 0 || len(n.extraSeeds) > 0 || n.table.size > 0
	stale := n.table.stale(now.Add(-goodFor))
	quest := n.table.questionable(now, K)
	n.peers.expire(now)
	n.limit.sweep(now)
	save := n.cfg.State != nil && now.Sub(n.lastSave) >= saveEvery
	n.mu.Unlock()

	if low && hasSeeds {
		if err := n.Bootstrap(ctx); err != nil && ctx.Err() == nil {
			n.log.Debug("dht: bootstrap", "err", err)
		}
	}
	for _, c := range quest {
		_, _ = n.send(c, true, "ping", &args{}, func(*msg, error) {})
	}
	// Refresh a few stale buckets per tick, so a long-idle node does not
	// burst hundreds of queries at once.
	if len(stale) > 0 {
		if lctx, done, err := n.begin(ctx); err == nil {
			n.refresh(lctx, stale[:min(3, len(stale))])
			done()
		}
	}
	if save {
		if err := n.saveState(); err != nil {
			n.log.Warn("dht: saving state", "err", err)
		}
	}
}

// state is what StateFile keeps: our id and the routing table's contacts,
// which serve as bootstrap nodes on the next start.
type state struct {
	id    [20]byte
	nodes []contact
}

type stateFile struct {
	ID     string `bencode:"id"`
	Nodes  string `bencode:"nodes,omitempty"`
	Nodes6 string `bencode:"nodes6,omitempty"`
}

// StateStore keeps a node's state (its id and routing table, about 10
// KiB) across runs.
type StateStore interface {
	// Load returns the saved state, or nil with no error if there is none.
	Load() ([]byte, error)
	// Save replaces the saved state.
	Save(b []byte) error
}

// maxStateFile bounds what loadState reads: a full table is ~160 buckets
// of 8 nodes of at most 38 bytes.
const maxStateFile = 1 << 20

// fileState is a StateStore in one file, replaced atomically.
type fileState string

func (path fileState) Load() ([]byte, error) {
	f, err := os.Open(string(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func (path fileState) Save(b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(string(path)), ".dht-state-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), string(path))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

func loadState(store StateStore) (*state, error) {
	b, err := store.Load()
	if err != nil || b == nil {
		return nil, err
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("state is larger than %d bytes", maxStateFile)
	}
	var sf stateFile
	if err := bencode.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if len(sf.ID) != 20 {
		return nil, fmt.Errorf("state: id is %d bytes, want 20", len(sf.ID))
	}
	st := &state{id: [20]byte([]byte(sf.ID))}
	v4, err := parseCompactNodes(sf.Nodes, false)
	if err != nil {
		return nil, fmt.Errorf("state: nodes: %w", err)
	}
	v6, err := parseCompactNodes(sf.Nodes6, true)
	if err != nil {
		return nil, fmt.Errorf("state: nodes6: %w", err)
	}
	st.nodes = append(v4, v6...)
	return st, nil
}

// saveState saves the node's id and routing table.
func (n *Node) saveState() error {
	n.mu.Lock()
	all := n.table.all()
	n.lastSave = n.now()
	n.mu.Unlock()
	sf := stateFile{ID: string(n.id[:])}
	sf.Nodes = string(appendCompactNodes(nil, all, false))
	sf.Nodes6 = string(appendCompactNodes(nil, all, true))
	b, err := bencode.Marshal(&sf)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return n.cfg.State.Save(b)
}
