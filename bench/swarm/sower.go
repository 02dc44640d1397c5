package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/storage"
)

// sowerNode is one Sower peer of the swarm, all in this process.
type sowerNode struct {
	name  string
	t     *engine.Torrent
	sess  *session.Session
	swarm *session.Swarm
	store *storage.Memory
	addr  netip.AddrPort
}

// runSower runs the scenario with Sower for the seed and every leecher,
// each with its own listener and in-memory storage (so disks stay out of
// the measurement).
func runSower(ctx context.Context, sc *Scenario, mode Mode) (Result, error) {
	res := Result{Impl: "sower", Mode: mode, Leechers: sc.Leechers, Size: sc.Size, Ideal: sc.Ideal(), Wasted: -1}
	want, err := fileSHA256(sc.Data)
	if err != nil {
		return res, err
	}
	log, closeLog, err := sowerLogger(sc)
	if err != nil {
		return res, err
	}
	defer closeLog()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var sessions []*session.Session
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	policy := engine.EndGameAllRequested
	if mode == ModeAllStarted {
		policy = engine.EndGameAllStarted
	}
	mi := sc.Meta
	newNode := func(name string, seed bool) (*sowerNode, error) {
		layout, err := storage.NewLayout(engine.Files(&mi.Info), mi.Info.PieceLength)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		store := storage.NewMemory(layout)
		sess, err := session.New(session.Config{Listen: "127.0.0.1:0", NoDHT: true, Logger: log.With("peer", name)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		sessions = append(sessions, sess)
		cfg := sess.EngineConfig(false)
		cfg.EndGame, cfg.Logger, cfg.MaxUnchoked = policy, log.With("peer", name), sc.Slots
		if seed {
			if err := fillFromFile(store, sc.Data); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if cfg.Have, err = storage.Recheck(ctx, store, layout, mi.Info.Pieces, 0, nil); err != nil {
				return nil, fmt.Errorf("%s: recheck: %w", name, err)
			}
			if !cfg.Have.Full() {
				return nil, fmt.Errorf("%s: seed data failed its recheck", name)
			}
			cfg.UploadLimit = engine.NewLimiter(sc.Rate)
			cfg.SuperSeed = mode == ModeSuperSeed
		}
		t, err := engine.New(&mi.Info, mi.InfoHash, layout, store, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		w, err := sess.Join(mi.InfoHash, session.SwarmOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &sowerNode{name: name, t: t, sess: sess, swarm: w, store: store,
			addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), sess.Port())}, nil
	}
	start := func(n *sowerNode) {
		n.swarm.Attach(ctx, n.t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.t.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("torrent stopped", "peer", n.name, "err", err)
			}
		}()
	}

	seed, err := newNode("seed", true)
	if err != nil {
		return res, err
	}
	start(seed)
	nodes := make([]*sowerNode, sc.Leechers)
	for i := range nodes {
		if nodes[i], err = newNode(fmt.Sprintf("leecher%d", i+1), false); err != nil {
			return res, err
		}
	}

	// Release: every leecher starts at once and dials the seed and the
	// leechers before it; the later ones dial it, so each pair is
	// connected once.
	began := time.Now()
	for i, n := range nodes {
		start(n)
		n.t.AddPeers(seed.addr)
		for _, o := range nodes[:i] {
			n.t.AddPeers(o.addr)
		}
	}
	// One watcher per leecher records the moment it completes.
	took := make([]time.Duration, len(nodes))
	var watchers sync.WaitGroup
	for i, n := range nodes {
		watchers.Go(func() {
			select {
			case <-n.t.Done():
				took[i] = time.Since(began)
			case <-ctx.Done():
			}
		})
	}
	allDone := make(chan struct{})
	go func() { watchers.Wait(); close(allDone) }()
	if sc.Debug {
		wg.Go(func() { sample(ctx, log, began, seed, nodes, allDone) })
	}
	select {
	case <-allDone:
	case <-time.After(sc.Timeout):
		cancel()
		<-allDone
		return res, fmt.Errorf("sower %s: not every leecher done within %v: %s", mode, sc.Timeout, sowerProgress(nodes))
	case <-ctx.Done():
		<-allDone
		return res, ctx.Err()
	}
	res.summarise(took)

	// Stats are snapshots refreshed about once a second.
	time.Sleep(1500 * time.Millisecond)
	ss := seed.t.Stats()
	res.SeedUp, res.TotalUp, res.Wasted = ss.Uploaded, ss.Uploaded, 0
	for _, n := range nodes {
		st := n.t.Stats()
		res.TotalUp += st.Uploaded
		res.Wasted += st.Wasted
		if st.HashFailures > 0 {
			res.Note += fmt.Sprintf("%s: %d hash failures; ", n.name, st.HashFailures)
		}
	}
	if sc.Debug {
		logPeers(log, seed, nodes)
	}
	cancel()
	wg.Wait()

	for _, n := range nodes {
		got, err := memorySHA256(n.store, sc.Size)
		if err != nil {
			return res, fmt.Errorf("%s: %w", n.name, err)
		}
		if !bytes.Equal(got, want) {
			return res, fmt.Errorf("%s: downloaded data differs from the original", n.name)
		}
	}
	return res, nil
}

// sowerProgress says how far each leecher got, for a timeout error.
func sowerProgress(nodes []*sowerNode) string {
	var b bytes.Buffer
	for _, n := range nodes {
		st := n.t.Stats()
		fmt.Fprintf(&b, "%s %.1f%% (%d peers); ", n.name, st.Progress()*100, st.Peers)
	}
	return b.String()
}

// sample logs, four times a second until done, how much the seed has
// uploaded and how many pieces each leecher holds, to see where time goes.
func sample(ctx context.Context, log *slog.Logger, began time.Time, seed *sowerNode, nodes []*sowerNode, done <-chan struct{}) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-tick.C:
		}
		ss := seed.t.Stats()
		have := make([]int, len(nodes))
		var slow engine.Stats
		for i, n := range nodes {
			st := n.t.Stats()
			have[i] = st.PiecesHave
			if i == 0 || st.PiecesHave < slow.PiecesHave {
				slow = st
			}
		}
		// How the slowest leecher's peers treat it: "d" means they choke it.
		var slowFlags []string
		for _, p := range slow.Peerlist {
			slowFlags = append(slowFlags, p.Flags)
		}
		flags := make([]string, 0, len(ss.Peerlist))
		for _, p := range ss.Peerlist {
			flags = append(flags, p.Flags)
		}
		log.Info("sample", "t", time.Since(began).Round(time.Millisecond), "seed_up", ss.Uploaded,
			"seed_rate", int64(ss.UploadRate), "have", have, "seed_flags", flags,
			"slowest_flags", slowFlags)
	}
}

// logPeers writes every node's per-peer view at the end of a run, to find
// where the seed's upload went.
func logPeers(log *slog.Logger, seed *sowerNode, nodes []*sowerNode) {
	for _, n := range append([]*sowerNode{seed}, nodes...) {
		st := n.t.Stats()
		log.Info("final", "peer", n.name, "uploaded", st.Uploaded, "downloaded", st.Downloaded,
			"wasted", st.Wasted, "hash_failures", st.HashFailures, "peers", st.Peers)
		for _, p := range st.Peerlist {
			log.Info("final peer", "peer", n.name, "remote", p.Addr, "client", p.Client,
				"uploaded", p.Uploaded, "downloaded", p.Downloaded, "flags", p.Flags)
		}
	}
}

// sowerLogger logs warnings to stderr, or everything to a file in the
// scenario's folder when debugging.
func sowerLogger(sc *Scenario) (*slog.Logger, func(), error) {
	if !sc.Debug {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), func() {}, nil
	}
	f, err := os.Create(filepath.Join(sc.Work, "sower.log"))
	if err != nil {
		return nil, nil, fmt.Errorf("debug log: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})), func() { f.Close() }, nil
}

// fillFromFile copies the file into the seed's memory storage.
func fillFromFile(store *storage.Memory, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	var off int64
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := store.WriteAt(buf[:n], off); werr != nil {
				return fmt.Errorf("fill seed at offset %d: %w", off, werr)
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// memorySHA256 hashes the first size bytes of a leecher's storage.
func memorySHA256(store *storage.Memory, size int64) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(store, 0, size)); err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	return h.Sum(nil), nil
}

// fileSHA256 hashes a file.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return h.Sum(nil), nil
}
