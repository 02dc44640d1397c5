// Command swarm is the swarm benchmark of issue 4: one seed limited to a
// fixed upload rate and N leechers released at the same moment on
// 127.0.0.1, run with Sower, libtorrent (python3-libtorrent) and aria2
// in turn so their figures can be compared side by side.
//
// For each run it reports the time until the last leecher completes over
// the ideal time (file size / seed rate), how many copies of the file the
// seed uploaded, and the redundant bytes. Leechers keep seeding until all
// are done. Start-up (checking the seed's data, starting programs) is not
// counted: the clock starts when the leechers are told their peers.
//
// Usage (see bench/swarm.sh and docs/benchmarks.md):
//
//	go run ./bench/swarm -n 6,32 -size 96MiB,256MiB -impl sower,libtorrent,aria2
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	leechers []int
	sizes    []int64
	impls    []string
	modes    map[string][]Mode
	rate     int64
	piece    int64
	dir      string
	keep     bool
	debug    bool
	cpuprof  string
	slots    int
}

// implModes lists what an implementation can run, and whether it is known.
// aria2 has no super-seeding and neither other program lets its end game
// be chosen.
func implModes(impl string) ([]Mode, bool) {
	switch impl {
	case "sower":
		return []Mode{ModeAllRequested, ModeAllStarted, ModeSuperSeed}, true
	case "libtorrent":
		return []Mode{ModeDefault, ModeSuperSeed}, true
	case "aria2":
		return []Mode{ModeDefault}, true
	}
	return nil, false
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "swarm:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.cpuprof != "" {
		f, err := os.Create(opts.cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "swarm:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "swarm:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, opts, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "swarm:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("swarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.String("n", "6", "numbers of leechers, comma-separated")
	size := fs.String("size", "96MiB", "file sizes, comma-separated (KiB, MiB, GiB suffixes)")
	impl := fs.String("impl", "sower,libtorrent,aria2", "implementations to run, comma-separated")
	modes := fs.String("modes", "", "only these modes, comma-separated (default all: "+
		"endgame=all-requested, endgame=all-started, default, super-seed)")
	rate := fs.Int64("rate", 8_000_000, "the seed's upload limit in bytes per second")
	piece := fs.String("piece", "256KiB", "piece length")
	dir := fs.String("dir", "", "scratch folder (default a new one under $TMPDIR)")
	keep := fs.Bool("keep", false, "keep the scratch folder and its logs")
	debug := fs.Bool("debug", false, "write Sower debug logs and per-peer stats to the scratch folder (implies -keep)")
	slots := fs.Int("slots", 0, "Sower's upload slots per peer (0: the engine's default), to compare choker settings")
	cpuprof := fs.String("cpuprofile", "", "write a CPU profile of the whole run (Sower's peers run in this process) to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := &options{rate: *rate, dir: *dir, keep: *keep || *debug, debug: *debug, cpuprof: *cpuprof, slots: *slots, modes: map[string][]Mode{}}
	for f := range strings.SplitSeq(*n, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 || v > 200 {
			return nil, fmt.Errorf("-n: %q is not a number of leechers in 1..200", f)
		}
		o.leechers = append(o.leechers, v)
	}
	for f := range strings.SplitSeq(*size, ",") {
		v, err := parseSize(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-size: %w", err)
		}
		o.sizes = append(o.sizes, v)
	}
	var err error
	if o.piece, err = parseSize(*piece); err != nil {
		return nil, fmt.Errorf("-piece: %w", err)
	}
	if o.piece%(16<<10) != 0 {
		return nil, fmt.Errorf("-piece: %d is not a multiple of 16 KiB", o.piece)
	}
	if o.rate < 16<<10 {
		return nil, fmt.Errorf("-rate: %d is below one block per second", o.rate)
	}
	var only []Mode
	if *modes != "" {
		for f := range strings.SplitSeq(*modes, ",") {
			only = append(only, Mode(strings.TrimSpace(f)))
		}
	}
	for f := range strings.SplitSeq(*impl, ",") {
		name := strings.TrimSpace(f)
		all, ok := implModes(name)
		if !ok {
			return nil, fmt.Errorf("-impl: unknown implementation %q (want sower, libtorrent or aria2)", name)
		}
		o.impls = append(o.impls, name)
		for _, m := range all {
			if only == nil || slices.Contains(only, m) {
				o.modes[name] = append(o.modes[name], m)
			}
		}
	}
	return o, nil
}

// run measures every combination and prints a table per size and swarm.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	root := o.dir
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "sower-swarm-"); err != nil {
			return err
		}
	}
	if o.keep {
		fmt.Fprintf(stderr, "scratch folder: %s\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	for _, size := range o.sizes {
		data, torrent, mi, err := makeData(ctx, root, size, o.piece)
		if err != nil {
			return err
		}
		for _, n := range o.leechers {
			var results []Result
			for _, impl := range o.impls {
				for _, mode := range o.modes[impl] {
					work, err := os.MkdirTemp(root, fmt.Sprintf("%s-%d-%d-", impl, n, size>>20))
					if err != nil {
						return err
					}
					sc := &Scenario{Leechers: n, Rate: o.rate, Data: data, Torrent: torrent, Meta: mi,
						Size: size, Work: work, Debug: o.debug, Slots: o.slots}
					sc.Timeout = max(3*time.Minute, 15*sc.Ideal())
					log.Info("run", "impl", impl, "mode", mode, "leechers", n, "size", formatSize(size))
					res, err := runOne(ctx, sc, impl, mode)
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if err != nil {
						log.Error("run failed", "impl", impl, "mode", mode, "err", err)
						res = Result{Impl: impl, Mode: mode, Leechers: n, Size: size, Ideal: sc.Ideal(), Note: "failed: " + err.Error()}
					} else {
						log.Info("result", "impl", impl, "mode", mode, "last", res.Last.Round(time.Millisecond),
							"x_ideal", fmt.Sprintf("%.2f", res.Slowdown()), "copies", fmt.Sprintf("%.2f", res.Copies()))
					}
					results = append(results, res)
					if !o.keep {
						os.RemoveAll(work)
					}
				}
			}
			printTable(stdout, n, size, o.rate, results)
		}
	}
	return nil
}

// runOne runs one implementation in one mode.
func runOne(ctx context.Context, sc *Scenario, impl string, mode Mode) (Result, error) {
	switch impl {
	case "sower":
		// Sower's peers keep their data in this process's memory (N+1
		// copies of the file): hand it back before the next run, or a
		// large swarm's garbage plus the next one's live data exceeds RAM.
		defer debug.FreeOSMemory()
		return runSower(ctx, sc, mode)
	case "libtorrent":
		return runLibtorrent(ctx, sc, mode)
	case "aria2":
		return runAria2(ctx, sc, mode)
	}
	return Result{}, fmt.Errorf("unknown implementation %q", impl)
}

// printTable writes one Markdown table of results.
func printTable(w io.Writer, n int, size, rate int64, results []Result) {
	ideal := float64(size) / float64(rate)
	fmt.Fprintf(w, "\nN = %d leechers, %s file, seed at %d B/s (ideal %.2f s)\n\n", n, formatSize(size), rate, ideal)
	fmt.Fprintln(w, "| implementation | mode | first s | median s | last s | last / ideal | seed copies | wasted | all uploads - N copies | note |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, r := range results {
		if strings.HasPrefix(r.Note, "failed") {
			fmt.Fprintf(w, "| %s | %s | | | | | | | | %s |\n", r.Impl, r.Mode, r.Note)
			continue
		}
		wasted := "n/a"
		if r.Wasted >= 0 {
			wasted = formatSize(r.Wasted)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %.2f | %.2fx | %.2f | %s | %s | %s |\n",
			r.Impl, r.Mode, r.First.Seconds(), r.Median.Seconds(), r.Last.Seconds(), r.Slowdown(), r.Copies(),
			wasted, formatSize(r.Excess()), r.Note)
	}
}

// workFile names a file in the scenario's folder.
func workFile(sc *Scenario, name string) string { return filepath.Join(sc.Work, name) }
