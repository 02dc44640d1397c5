package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/storage"
)

// swarmFlags are the options get and seed share.
type swarmFlags struct {
	port          int
	portSet       bool // --port given explicitly
	listen        string
	peers         []string
	quiet         bool
	uploadLimit   string
	downloadLimit string
	noDHT         bool
	dhtBootstrap  []string
	superSeed     bool
	sync          bool
	encryption    string
}

func (f *swarmFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.port, "port", 6881, "TCP port to accept peers on, all interfaces (0 picks a free one)")
	cmd.Flags().StringVar(&f.listen, "listen", "", "accept peers on this IP:PORT only, e.g. 127.0.0.1:6881 (instead of --port)")
	cmd.Flags().StringArrayVar(&f.peers, "peer", nil, "dial this peer HOST:PORT directly (repeatable)")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress display")
	cmd.Flags().StringVar(&f.uploadLimit, "upload-limit", "", "upload rate limit, bytes/s (e.g. 8M, 512KiB)")
	cmd.Flags().BoolVar(&f.noDHT, "no-dht", false, "do not use the DHT")
	cmd.Flags().StringArrayVar(&f.dhtBootstrap, "dht-bootstrap", nil, "DHT bootstrap node HOST:PORT (repeatable)")
	cmd.Flags().StringVar(&f.encryption, "encryption", "prefer", "peer connection encryption (MSE): off (plaintext only), prefer (encrypted first, plaintext fallback) or require (RC4 only)")
	cmd.Flags().BoolVar(&f.sync, "sync", false, "before exiting, wait until the downloaded data is on disk (fsync), not only in the files")
}

func newGetCmd() *cobra.Command {
	var (
		sf     swarmFlags
		outDir string
		seed   bool
		noSeed bool
		only   string
	)
	cmd := &cobra.Command{
		Use:   "get [flags] TORRENT_FILE|MAGNET",
		Short: "Download a torrent",
		Long: `Download a torrent into a folder. Data already there is checked first and
every verified piece is kept, so an interrupted download resumes.
Exits 0 once the download is complete and verified; with --seed it keeps
seeding until interrupted (Ctrl-C), which announces "stopped" and flushes files.`,
		Example: `  sower get -o ~/Downloads ubuntu.iso.torrent
  sower get --only '*.mkv' --seed show.torrent
  sower get --port 0 --peer 127.0.0.1:6881 file.torrent`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sf.portSet = cmd.Flags().Changed("port")
			if _, err := session.ParseEncryption(sf.encryption); err != nil {
				return &usageError{fmt.Errorf("--encryption: %w", err)}
			}
			if seed && noSeed {
				return errors.New("--seed and --no-seed contradict each other")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var (
				mi  *metainfo.MetaInfo
				mag *magnet.Magnet
				err error
			)
			if strings.HasPrefix(args[0], "magnet:") {
				if mag, err = magnet.Parse(args[0]); err != nil {
					return err
				}
			} else if mi, err = metainfo.Load(args[0]); err != nil {
				return err
			}
			peers, err := sf.peerAddrs()
			if err != nil {
				return err
			}
			var nodes []string
			if mi != nil {
				nodes = mi.Nodes
			}
			s, err := openSession(sf, mi != nil && mi.Info.Private, nodes)
			if err != nil {
				return err
			}
			defer s.Close()
			var swarm *session.Swarm
			if mag != nil {
				if mi, swarm, err = fetchMetadata(ctx, s, mag, peers, sf.quiet); err != nil {
					return err
				}
				defer swarm.Leave()
			}
			wanted, err := selectFiles(&mi.Info, only)
			if err != nil {
				return err
			}
			if wanted == nil && mag != nil {
				wanted = session.Wanted(mag, len(mi.Info.FileEntries()))
			}
			return runTorrent(ctx, s, sf, mi, outDir, runOptions{wanted: wanted, seed: seed, peers: peers, swarm: swarm})
		},
	}
	cmd.Flags().StringVarP(&outDir, "output", "o", ".", "folder to download into")
	cmd.Flags().BoolVar(&seed, "seed", false, "keep seeding after the download completes")
	cmd.Flags().BoolVar(&noSeed, "no-seed", false, "exit as soon as the download completes (the default)")
	cmd.Flags().StringVar(&only, "only", "", "download only these files: indices (0,2,5-7) or globs (*.iso), comma-separated")
	cmd.Flags().StringVar(&sf.downloadLimit, "download-limit", "", "download rate limit, bytes/s (e.g. 8M, 512KiB)")
	sf.register(cmd)
	return cmd
}

func newSeedCmd() *cobra.Command {
	var (
		sf        swarmFlags
		superSeed bool
	)
	cmd := &cobra.Command{
		Use:   "seed [flags] TORRENT_FILE DIR",
		Short: "Verify a torrent's data and seed it",
		Long: `Seed a torrent from DIR, the folder that holds the torrent's file (single-file)
or its top folder (multi-file), like the -o DIR of get. The data is verified
first; missing or damaged pieces are downloaded from the swarm before seeding.
Runs until interrupted (Ctrl-C), which announces "stopped" to the trackers.`,
		Example: `  sower seed ubuntu.iso.torrent ~/Downloads
  sower seed --port 0 movie.torrent /srv/data`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := session.ParseEncryption(sf.encryption); err != nil {
				return &usageError{fmt.Errorf("--encryption: %w", err)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			mi, err := metainfo.Load(args[0])
			if err != nil {
				return err
			}
			sf.superSeed = superSeed
			sf.portSet = cmd.Flags().Changed("port")
			peers, err := sf.peerAddrs()
			if err != nil {
				return err
			}
			s, err := openSession(sf, mi.Info.Private, mi.Nodes)
			if err != nil {
				return err
			}
			defer s.Close()
			return runTorrent(ctx, s, sf, mi, args[1], runOptions{seed: true, peers: peers})
		},
	}
	cmd.Flags().BoolVar(&superSeed, "super-seed", false, "super-seeding (BEP 16): offer each peer pieces nobody else has")
	sf.register(cmd)
	return cmd
}

// selectFiles turns --only into a per-file wanted mask (nil = all). Items
// are file indices, ranges of indices, or globs matched against the path
// inside the torrent and against the base name.
func selectFiles(info *metainfo.Info, spec string) ([]bool, error) {
	if spec == "" {
		return nil, nil
	}
	entries := info.FileEntries()
	wanted := make([]bool, len(entries))
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if lo, hi, ok := indexRange(item); ok {
			if lo < 0 || hi >= len(entries) || lo > hi {
				return nil, fmt.Errorf("--only %q: file index out of range (torrent has files 0-%d)", item, len(entries)-1)
			}
			for i := lo; i <= hi; i++ {
				wanted[i] = true
			}
			continue
		}
		if _, err := path.Match(item, ""); err != nil {
			return nil, fmt.Errorf("--only %q: bad glob: %w", item, err)
		}
		matched := false
		for i, e := range entries {
			inTorrent := e.Path
			if info.IsMultiFile() {
				inTorrent = strings.TrimPrefix(e.Path, info.Name+"/")
			}
			a, _ := path.Match(item, inTorrent)
			b, _ := path.Match(item, path.Base(e.Path))
			if (a || b) && !e.Padding {
				wanted[i] = true
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("--only %q matches no file", item)
		}
	}
	return wanted, nil
}

func indexRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	if !isRange {
		return lo, lo, true
	}
	hi, err = strconv.Atoi(b)
	if err != nil {
		return 0, 0, false
	}
	return lo, hi, true
}

// runOptions are what get and seed tell run beyond the flags.
type runOptions struct {
	wanted []bool
	seed   bool // keep seeding once complete
	peers  []netip.AddrPort
	swarm  *session.Swarm // a magnet's swarm, joined to fetch the metadata
}

// run verifies what is on disk, then downloads and/or seeds until the
// download completes (and seed is false), the user interrupts, or the
// torrent stops on a fatal error (a full or read-only disk).
func runTorrent(ctx context.Context, s *session.Session, sf swarmFlags, mi *metainfo.MetaInfo, dir string, o runOptions) error {
	log := slog.Default()
	upLimit, err := parseLimit("--upload-limit", sf.uploadLimit)
	if err != nil {
		return err
	}
	downLimit, err := parseLimit("--download-limit", sf.downloadLimit)
	if err != nil {
		return err
	}
	ui := newStatusLine(os.Stderr, sf.quiet)
	start := time.Now()
	t, err := s.AddTorrent(ctx, mi, session.TorrentOptions{
		Dir:           dir,
		Wanted:        o.wanted,
		SuperSeed:     sf.superSeed,
		UploadLimit:   upLimit,
		DownloadLimit: downLimit,
		Peers:         o.peers,
		Storage:       storage.Options{EarlyWriteback: sf.sync, DropBehind: true},
		SyncOnStop:    sf.sync,
		OnCheck:       ui.checking,
		Swarm:         o.swarm,
	})
	ui.done()
	if err != nil {
		return err
	}
	if n := t.Have().Count(); n > 0 {
		log.Info("existing data checked", "verified_pieces", n, "of", t.Layout().NumPieces(), "took", time.Since(start).Round(time.Millisecond))
	}
	log.Info("started", "torrent", mi.Info.Name, "infohash", fmt.Sprintf("%x", mi.InfoHash), "port", s.Port())

	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	done := t.Done()
	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			result = errInterrupted(t.Stats(), o.seed)
			break loop
		case <-t.Stopped():
			break loop // Close returns the engine's error
		case <-done:
			done = nil
			ui.progress(t.Stats())
			ui.done()
			st := t.Stats()
			fmt.Fprintf(os.Stderr, "%s: complete in %s: downloaded %d bytes (%d from web seeds, %d wasted, %d hash failures), uploaded %d bytes\n",
				mi.Info.Name, time.Since(start).Round(time.Millisecond), st.Downloaded, st.WebSeedDownloaded, st.Wasted, st.HashFailures, st.Uploaded)
			if !o.seed {
				break loop
			}
			fmt.Fprintln(os.Stderr, "seeding; Ctrl-C to stop")
		case <-tick.C:
			ui.progress(t.Stats())
		}
	}
	ui.done()
	if err := t.Close(); err != nil && result == nil {
		result = err
	}
	return result
}

// parseLimit reads a RATE flag; empty means no limit.
func parseLimit(flag, s string) (*rate.Limiter, error) {
	if s == "" {
		return nil, nil
	}
	n, err := parseSize(s)
	if err != nil {
		return nil, &usageError{fmt.Errorf("%s: %w", flag, err)}
	}
	if n <= 0 {
		return nil, &usageError{fmt.Errorf("%s: must be positive", flag)}
	}
	return engine.NewLimiter(n), nil
}

// errInterrupted is the exit status for Ctrl-C: success for a seed or a
// finished download, an error for an incomplete download so scripts can tell.
func errInterrupted(s engine.Stats, seed bool) error {
	if s.Complete {
		return nil
	}
	if seed && s.Left == 0 {
		return nil
	}
	return fmt.Errorf("interrupted at %.1f%%; run the same command again to resume", s.Progress()*100)
}

// statusLine shows progress on a terminal with a progress bar (percent,
// bytes, rate and ETA from the bar library) whose description carries the
// swarm figures. It is silent when stderr is not a terminal or with --quiet.
type statusLine struct {
	w   io.Writer
	on  bool
	bar *progressbar.ProgressBar
}

func newStatusLine(w *os.File, quiet bool) *statusLine {
	return &statusLine{w: w, on: !quiet && isTerminal(w)}
}

func (s *statusLine) newBar(total int64, desc string, bytes bool) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(s.w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(20),
		progressbar.OptionClearOnFinish(),
	)
}

func (s *statusLine) checking(n, total int) {
	if !s.on {
		return
	}
	if s.bar == nil {
		s.bar = s.newBar(int64(total), "checking existing data (pieces)", false)
	}
	s.bar.Set(n)
}

func (s *statusLine) progress(st engine.Stats) {
	if !s.on {
		return
	}
	if s.bar == nil {
		s.bar = s.newBar(st.Wanted, "", true)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "peers %d (%d seeds)  up %s/s  avail %.2f  ratio %.2f", st.Peers, st.Seeds,
		formatSize(int64(st.UploadRate)), st.Availability, st.Ratio())
	if st.WebSeedDownloaded > 0 {
		fmt.Fprintf(&b, "  web %s", formatSize(st.WebSeedDownloaded))
	}
	if st.Wasted > 0 {
		fmt.Fprintf(&b, "  wasted %s (%d hash fails)", formatSize(st.Wasted), st.HashFailures)
	}
	s.bar.Describe(b.String())
	s.bar.Set64(st.Completed)
}

func (s *statusLine) done() {
	if s.bar != nil {
		s.bar.Finish()
		fmt.Fprintln(s.w)
		s.bar = nil
	}
}
