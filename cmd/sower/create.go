package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sowerbt/sower/metainfo"
)

// createFlags are the options of `sower create`.
type createFlags struct {
	out         string
	trackers    []string
	webSeeds    []string
	private     bool
	pieceLength string
	comment     string
	dhtNodes    []string
	quiet       bool
	noDate      bool
	force       bool
	workers     int
}

func newCreateCmd() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] PATH",
		Short: "Make a .torrent file for a file or folder",
		Long: `Hash a file or a folder and write a .torrent file describing it.

A file gives a single-file torrent; a folder gives a multi-file torrent
named after the folder, its files in sorted path order. Symbolic links inside
the folder are skipped with a warning; devices, sockets and FIFOs are refused.

The first --tracker is the main announce URL; several trackers are all
listed in the announce-list, one per tier, tried in order. The piece length
is picked for 1000-2000 pieces unless given; sizes accept K/M/G (powers of
1000) and KiB/MiB/GiB (powers of 1024).

A progress bar is shown on stderr when it is a terminal. The info-hash and
the magnet link are printed on stdout at the end.`,
		Example: `  sower create --tracker http://127.0.0.1:6969/announce ./photos
  sower create -o movie.torrent --piece-length 4MiB --private \
      --tracker udp://tracker.example:6969 --webseed https://mirror.example/pub/ movie.mkv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "output", "o", "", "write the torrent to this file (default NAME.torrent in the current folder)")
	fl.StringArrayVar(&f.trackers, "tracker", nil, "announce URL (repeat for backup trackers)")
	fl.StringArrayVar(&f.webSeeds, "webseed", nil, "web seed URL, BEP 19 (repeatable)")
	fl.BoolVar(&f.private, "private", false, "mark the torrent private (BEP 27): trackers only, no DHT or PEX")
	fl.StringVar(&f.pieceLength, "piece-length", "auto", "piece length in bytes, a power of two from 16KiB to 256MiB, or auto")
	fl.StringVar(&f.comment, "comment", "", "free-text comment stored in the torrent")
	fl.StringArrayVar(&f.dhtNodes, "dht-node", nil, "DHT bootstrap node HOST:PORT stored in the torrent (repeatable)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")
	fl.BoolVar(&f.noDate, "no-date", false, "omit the creation date, for reproducible output")
	fl.BoolVarP(&f.force, "force", "f", false, "overwrite the output file if it exists")
	fl.IntVar(&f.workers, "workers", 0, "hashing goroutines (default: number of CPUs)")
	return cmd
}

func runCreate(cmd *cobra.Command, path string, f createFlags) error {
	pl, err := parsePieceLength(f.pieceLength)
	if err != nil {
		return &usageError{err}
	}
	if f.workers < 0 {
		return &usageError{errors.New("--workers must not be negative")}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out := f.out
	if out == "" {
		out = filepath.Base(abs) + ".torrent"
	}
	if !f.force {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("%s already exists (use --force to overwrite)", out)
		}
	}

	opts := metainfo.BuildOptions{
		Trackers:    f.trackers,
		WebSeeds:    f.webSeeds,
		Private:     f.private,
		PieceLength: pl,
		Comment:     f.comment,
		CreatedBy:   "sower/" + version,
		DHTNodes:    f.dhtNodes,
		NoDate:      f.noDate,
		Workers:     f.workers,
	}
	stderr := cmd.ErrOrStderr()
	var bar *progressbar.ProgressBar
	var progress func(hashed, total int64)
	if !f.quiet && isTerminal(stderr) {
		progress = func(hashed, total int64) {
			if bar == nil {
				bar = newHashBar(stderr, total)
			}
			_ = bar.Set64(hashed)
		}
	}
	start := time.Now()
	m, err := metainfo.Build(cmd.Context(), path, opts, progress)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	elapsed := time.Since(start)
	data, err := m.Encode()
	if err != nil {
		return err
	}
	if err := writeFile(out, data, f.force); err != nil {
		return err
	}

	total := m.Info.TotalLength()
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "torrent:   %s\n", out)
	fmt.Fprintf(w, "name:      %s\n", m.Info.Name)
	fmt.Fprintf(w, "size:      %s (%d bytes), %d pieces of %s\n", formatSize(total), total, m.Info.NumPieces(), formatSize(m.Info.PieceLength))
	fmt.Fprintf(w, "hashed in: %s (%s/s)\n", elapsed.Round(time.Millisecond), formatSize(int64(float64(total)/max(elapsed.Seconds(), 1e-9))))
	fmt.Fprintf(w, "info-hash: %s\n", hex.EncodeToString(m.InfoHash[:]))
	fmt.Fprintf(w, "magnet:    %s\n", m.Magnet())
	return nil
}

// parsePieceLength reads --piece-length: "auto" (0) or a power of two
// within the range clients commonly accept.
func parsePieceLength(s string) (int64, error) {
	if strings.EqualFold(s, "auto") || s == "" {
		return 0, nil
	}
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("--piece-length: %w", err)
	}
	if n < 16<<10 || n > metainfo.MaxPieceLength || bits.OnesCount64(uint64(n)) != 1 {
		return 0, fmt.Errorf("--piece-length %s: must be a power of two from 16KiB to %dMiB", s, metainfo.MaxPieceLength>>20)
	}
	return n, nil
}

// newHashBar is the progress bar of the hashing: bytes, rate and ETA.
func newHashBar(w io.Writer, total int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("hashing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
	)
}

// isTerminal reports whether w is a terminal, where a progress bar helps
// rather than filling a log.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeFile writes the torrent. A new file is created exclusively, so a
// file that appeared meanwhile is not clobbered; with force an existing
// file is replaced through a temporary file and a rename, so a failed
// write never leaves a truncated torrent in its place.
func writeFile(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("write torrent: %w", err)
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sower-*.torrent")
	if err != nil {
		return fmt.Errorf("write torrent: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
