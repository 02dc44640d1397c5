package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/trackerserver"
)

func newDemoCmd() *cobra.Command {
	var (
		leechers int
		size     string
		keep     bool
	)
	cmd := &cobra.Command{
		Use:   "demo [--leechers N] [--size BYTES]",
		Short: "Run a local swarm: one seeder and N leechers on 127.0.0.1",
		Long: `Run a complete swarm on this machine, with no internet: generate a file,
make a torrent of it, seed it and download it with N leechers that also
trade pieces among themselves, showing live progress. Every leecher's copy
is verified against the original; the command exits 0 when all match.`,
		Example: `  sower demo
  sower demo --leechers 8 --size 256MiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseSize(size)
			if err != nil {
				return &usageError{fmt.Errorf("--size: %w", err)}
			}
			if n <= 0 || leechers < 1 || leechers > 64 {
				return &usageError{errors.New("--size must be positive and --leechers 1..64")}
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), leechers, n, keep)
		},
	}
	cmd.Flags().IntVar(&leechers, "leechers", 4, "number of downloading peers")
	cmd.Flags().StringVar(&size, "size", "64MiB", "size of the generated file")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo folder instead of deleting it")
	return cmd
}

// demoNode is one peer of the demo swarm.
type demoNode struct {
	name string
	dir  string
	t    *engine.Torrent
	took time.Duration
}

func runDemo(ctx context.Context, stdout, stderr io.Writer, leechers int, size int64, keep bool) error {
	root, err := os.MkdirTemp("", "sower-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(stderr, "demo folder: %s\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	seedDir := filepath.Join(root, "seed")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(seedDir, "demo.bin")
	want, err := writeRandomFile(src, size)
	if err != nil {
		return err
	}
	// The tracker outlives the peers (its context is not the peers'), so
	// their "stopped" announces at the end reach it.
	trkCtx, stopTracker := context.WithCancel(context.WithoutCancel(ctx))
	var trkWG sync.WaitGroup
	defer trkWG.Wait()
	defer stopTracker()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	log := slog.Default()

	// The embedded tracker: peers find each other only through it.
	trk, err := trackerserver.New(trackerserver.Config{
		Interval:     trackerserver.Duration(5 * time.Second),
		MinInterval:  trackerserver.Duration(time.Second),
		ExpireFactor: 100,
		Title:        "sower demo",
	}, log)
	if err != nil {
		return err
	}
	trkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	trkWG.Add(1)
	go func() {
		defer trkWG.Done()
		if err := trk.Serve(trkCtx, []net.Listener{trkLn}, nil); err != nil {
			log.Warn("demo tracker", "err", err)
		}
	}()
	announce := fmt.Sprintf("http://%s/announce", trkLn.Addr())

	mi, err := metainfo.Build(ctx, src, metainfo.BuildOptions{CreatedBy: "sower demo", Trackers: []string{announce}}, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "torrent %s: %s in %d pieces, info-hash %x, tracker %s\n", mi.Info.Name, formatSize(size), mi.Info.NumPieces(), mi.InfoHash, announce)

	// Each peer is a session of its own on loopback, as separate
	// processes would be; they find each other only through the tracker.
	var sessions []*session.Session
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	start := func(name, dir string, verify bool) (*demoNode, error) {
		s, err := session.New(session.Config{Listen: "127.0.0.1:0", NoDHT: true, Logger: log.With("peer", name)})
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, s)
		t, err := s.AddTorrent(ctx, mi, session.TorrentOptions{Dir: dir})
		if err != nil {
			return nil, err
		}
		if verify && !t.Have().Full() {
			t.Close()
			return nil, errors.New("seed data failed verification")
		}
		wg.Go(func() {
			<-ctx.Done()
			t.Close()
		})
		return &demoNode{name: name, dir: dir, t: t.Engine()}, nil
	}

	seed, err := start("seed", seedDir, true)
	if err != nil {
		return err
	}
	var nodes []*demoNode
	began := time.Now()
	for i := range leechers {
		dir := filepath.Join(root, fmt.Sprintf("leecher%d", i+1))
		n, err := start(fmt.Sprintf("leecher%d", i+1), dir, false)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}

	live := isTerminal(stderr)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lines := 0
	lastPrint := time.Time{}
	for {
		allDone := true
		for _, n := range nodes {
			if n.took == 0 && n.t.Stats().Complete {
				n.took = time.Since(began)
			}
			allDone = allDone && n.took != 0
		}
		if live || time.Since(lastPrint) >= 2*time.Second || allDone {
			lines = drawDemo(stderr, seed, nodes, live, lines)
			lastPrint = time.Now()
		}
		if allDone {
			break
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-tick.C:
		}
	}
	elapsed := time.Since(began)
	uploaded := seed.t.Stats().Uploaded
	cancel()
	wg.Wait()

	for _, n := range nodes {
		got, err := fileSHA256(filepath.Join(n.dir, mi.Info.Name))
		if err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: downloaded file differs from the original", n.name)
		}
	}
	fmt.Fprintf(stdout, "all %d leechers have a verified copy of %s (%s) in %s: %.0f MB/s per leecher; the seed uploaded %.2f copies\n",
		leechers, mi.Info.Name, formatSize(size), elapsed.Round(time.Millisecond),
		float64(size)/elapsed.Seconds()/1e6, float64(uploaded)/float64(size))
	return nil
}

// drawDemo prints one line per peer; on a terminal it redraws in place.
func drawDemo(w io.Writer, seed *demoNode, nodes []*demoNode, live bool, prev int) int {
	var b strings.Builder
	if live && prev > 0 {
		fmt.Fprintf(&b, "\033[%dA", prev)
	}
	clearLine := ""
	if live {
		clearLine = "\r\033[K"
	}
	s := seed.t.Stats()
	fmt.Fprintf(&b, "%s%-10s seeding      up %9s/s  peers %d\n", clearLine, seed.name, formatSize(int64(s.UploadRate)), s.Peers)
	for _, n := range nodes {
		s := n.t.Stats()
		state := fmt.Sprintf("%5.1f%% %s", s.Progress()*100, bar(s.Progress(), 20))
		if n.took != 0 {
			state = fmt.Sprintf("done in %-15s", n.took.Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "%s%-10s %s  down %9s/s  up %9s/s  peers %d\n", clearLine, n.name, state,
			formatSize(int64(s.DownloadRate)), formatSize(int64(s.UploadRate)), s.Peers)
	}
	if !live {
		b.WriteString("\n")
	}
	io.WriteString(w, b.String())
	return len(nodes) + 1
}

// writeRandomFile writes size pseudo-random bytes and returns their SHA-256.
func writeRandomFile(path string, size int64) ([]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
		}
		n := min(left, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return nil, err
		}
		h.Write(buf[:n])
		left -= n
	}
	return h.Sum(nil), f.Close()
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// bar draws a text progress bar of the given width.
func bar(frac float64, width int) string {
	n := int(frac * float64(width))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
