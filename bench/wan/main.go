//go:build linux

// Command wan runs BitTorrent clients over an emulated internet (issue
// 18): every client in its own network namespace, linked through
// internal/wanlab's router with per-host rate, delay, jitter, loss,
// queue and optional NAT, peers found through a tracker in the lab.
//
// Scenarios (-seed draws the hosts' parameters, -scale the file size):
//
//	pair          one seed, one leecher; 100 Mbit/s, 80 ms RTT, 0.1 % loss; 256 MiB
//	home          a seed with 20 Mbit/s up; 24 leechers with 2-10 Mbit/s up,
//	              20-100 Mbit/s down, 20-200 ms RTT, 0-1 % loss; 128 MiB; a third
//	              join late, a sixth leave at 50 % and come back
//	foreign-seed  home with Sower leechers and the seed being -client
//	nat           home with half the leechers behind NAT (full-cone, symmetric)
//
// Each scenario runs once per client (sower, libtorrent, aria2,
// transmission; -client picks some) and prints a table and one line per
// client:
//
//	RESULT scenario=pair client=sower seed=sower leechers=sower ideal_x=1.07 seed_copies=1.02 link_util=0.93 wasted=0.001 cpu_s=2.5 lab_cpu_ms_per_mbit=2.35 lab_late_ms=0.8 ok=1
//
// lab_late_ms is how late the router delivered packets on average: when
// the machine is too busy for the traffic it grows, and the run measured
// the machine rather than the clients.
//
// Usage:
//
//	go run ./bench/wan pair [-client sower,libtorrent] [-seed N] [-scale F]
//	go run ./bench/wan up home             build the lab only; Ctrl-C removes it
//	go run ./bench/wan exec leech3 -- ping -c3 10.77.0.2
//
// It needs root, /dev/net/tun, ip and nft; the clients come from Debian
// packages (aria2, transmission-daemon, python3-libtorrent) and Sower is
// built from this module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sowerbt/sower/internal/wanlab"
	"github.com/sowerbt/sower/metainfo"
)

// options are the settings of a scenario run.
type options struct {
	scenario string
	clients  []string
	seed     uint64
	scale    float64
	dir      string
	keep     bool
	sower    string
	verbose  bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wan:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: wan SCENARIO [flags] | wan up SCENARIO [-seed N] | wan exec HOST -- CMD...; scenarios: %v", scenarioNames)
	}
	switch args[0] {
	case "exec":
		return execIn(ctx, args[1:], stdout, stderr)
	case "up":
		if len(args) < 2 {
			return errors.New("usage: wan up SCENARIO [-seed N]")
		}
		o, err := parseFlags(args[1], args[2:], stderr)
		if err != nil {
			return err
		}
		return up(ctx, o, stdout, stderr)
	}
	o, err := parseFlags(args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	return runScenario(ctx, o, stdout, stderr)
}

func parseFlags(scenario string, args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("wan "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	clients := fs.String("client", "", "clients to run, comma-separated (default all: "+strings.Join(clientNames, ",")+
		"; for foreign-seed, the seeds: aria2,libtorrent,transmission)")
	seed := fs.Uint64("seed", 1, "draws the hosts' parameters and the lab's loss and jitter")
	scale := fs.Float64("scale", 1, "scales the file size (and so every time)")
	dir := fs.String("dir", "", "where to make the scratch folder (default $TMPDIR)")
	keep := fs.Bool("keep", false, "keep the scratch folder and the clients' logs")
	sower := fs.String("sower", "", "sower binary to run (default: built from this module)")
	verbose := fs.Bool("v", false, "log the lab's and the timeline's events")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !slices.Contains(scenarioNames, scenario) {
		return nil, fmt.Errorf("unknown scenario %q (want one of %v)", scenario, scenarioNames)
	}
	if *scale <= 0 || *scale > 16 {
		return nil, fmt.Errorf("-scale %v: want a number in (0, 16]", *scale)
	}
	o := &options{scenario: scenario, seed: *seed, scale: *scale, dir: *dir, keep: *keep, sower: *sower, verbose: *verbose}
	list := *clients
	if list == "" {
		list = strings.Join(clientNames, ",")
		if scenario == "foreign-seed" {
			list = "aria2,libtorrent,transmission"
		}
	}
	for c := range strings.SplitSeq(list, ",") {
		c = strings.TrimSpace(c)
		if !knownClient(c) {
			return nil, fmt.Errorf("-client: unknown client %q (want %v)", c, clientNames)
		}
		o.clients = append(o.clients, c)
	}
	return o, nil
}

// runScenario runs the scenario once per client and prints the table and
// the RESULT lines.
func runScenario(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if err := wanlab.Supported(); err != nil {
		return err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	p, err := buildPlan(o.scenario, o.seed, o.scale)
	if err != nil {
		return err
	}
	// A folder of its own, also under -dir: it is removed at the end.
	root, err := os.MkdirTemp(o.dir, "sower-wan-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "scratch folder:", root)
	} else {
		defer os.RemoveAll(root)
	}
	t, err := findTools(ctx, root, o.sower)
	if err != nil {
		return err
	}
	ds, err := makeDataset(ctx, root, p.size, p.piece)
	if err != nil {
		return err
	}
	printPlan(stdout, p)
	var results []*result
	for _, c := range o.clients {
		seedClient, leechClient := c, c
		if o.scenario == "foreign-seed" {
			leechClient = "sower"
		}
		work, err := os.MkdirTemp(root, c+"-")
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wan: %s with %s (seed %s), ideal %.1f s\n", o.scenario, leechClient, seedClient, p.ideal().Seconds())
		res, err := runPlan(ctx, log, p, seedClient, leechClient, ds, t, work, o.seed)
		if err != nil {
			return err
		}
		if res.err != nil {
			fmt.Fprintf(stderr, "wan: %s: %v\n", c, res.err)
		}
		results = append(results, res)
		if !o.keep {
			os.RemoveAll(work)
		}
	}
	printResults(stdout, p, results)
	return nil
}

// tools finds the programs the clients need: the sower binary (built from
// this module unless given) and the libtorrent script.
func findTools(ctx context.Context, root, sower string) (*tools, error) {
	t := &tools{sower: sower, ltScript: filepath.Join(root, "lt_node.py")}
	if err := os.WriteFile(t.ltScript, ltScript, 0o644); err != nil {
		return nil, err
	}
	if t.sower == "" {
		t.sower = filepath.Join(root, "sower")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.sower, "github.com/sowerbt/sower/cmd/sower")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build sower: %w: %s", err, out)
		}
	}
	if abs, err := filepath.Abs(t.sower); err == nil {
		t.sower = abs
	}
	return t, nil
}

// makeDataset writes size pseudo-random bytes (the same for the same size)
// and a torrent of them announcing to the lab's tracker.
func makeDataset(ctx context.Context, root string, size, piece int64) (*dataset, error) {
	dir := filepath.Join(root, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ds := &dataset{name: fmt.Sprintf("wan-%d.bin", size)}
	ds.path = filepath.Join(dir, ds.name)
	if err := writeRandom(ds.path, size); err != nil {
		return nil, err
	}
	mi, err := metainfo.Build(ctx, ds.path, metainfo.BuildOptions{PieceLength: piece, NoDate: true,
		CreatedBy: "sower bench/wan", Trackers: []string{fmt.Sprintf("http://%s:%d/announce", trackerAddr, trackerPort)}}, nil)
	if err != nil {
		return nil, fmt.Errorf("make torrent: %w", err)
	}
	enc, err := mi.Encode()
	if err != nil {
		return nil, err
	}
	ds.torrent = filepath.Join(root, ds.name+".torrent")
	if err := os.WriteFile(ds.torrent, enc, 0o644); err != nil {
		return nil, err
	}
	if ds.sha, err = fileSHA256(ds.path); err != nil {
		return nil, err
	}
	return ds, nil
}

// up builds a scenario's lab without clients and keeps it until
// interrupted, for `wan exec`.
func up(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	p, err := buildPlan(o.scenario, o.seed, o.scale)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lab, err := wanlab.New(ctx, wanlab.Config{Prefix: "swan", Seed: o.seed, Logger: log})
	if err != nil {
		return err
	}
	defer lab.Close()
	hosts, err := buildHosts(ctx, lab, p)
	if err != nil {
		return err
	}
	printPlan(stdout, p)
	fmt.Fprintf(stdout, "tracker host: %s\n", trackerAddr)
	for _, h := range hosts {
		fmt.Fprintf(stdout, "%-8s %-12s netns %s\n", h.Name(), h.Addr(), h.Namespace())
	}
	fmt.Fprintf(stdout, "lab up (pid %d); `go run ./bench/wan exec HOST -- CMD`; Ctrl-C removes it\n", os.Getpid())
	<-ctx.Done()
	return nil
}

// execIn runs a command in a host of a running lab: HOST [-lab PID] -- CMD.
func execIn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wan exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pid := fs.Int("lab", 0, "process id of the lab (when several run)")
	if len(args) == 0 {
		return errors.New("usage: wan exec HOST [-lab PID] -- CMD...")
	}
	host := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cmdArgs := fs.Args()
	if len(cmdArgs) == 0 {
		return errors.New("usage: wan exec HOST [-lab PID] -- CMD...")
	}
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return fmt.Errorf("no lab running: %w", err)
	}
	re := regexp.MustCompile(`^swan([0-9]+)-` + regexp.QuoteMeta(host) + `$`)
	var found []string
	for _, e := range entries {
		if m := re.FindStringSubmatch(e.Name()); m != nil {
			if p, _ := strconv.Atoi(m[1]); *pid == 0 || p == *pid {
				found = append(found, e.Name())
			}
		}
	}
	switch len(found) {
	case 0:
		return fmt.Errorf("no running lab has a host %q (start one with `wan up SCENARIO`)", host)
	case 1:
	default:
		return fmt.Errorf("several labs have a host %q (%v): pick one with -lab PID", host, found)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", found[0]}, cmdArgs...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	return cmd.Run()
}

// printPlan lists the scenario's hosts.
func printPlan(w io.Writer, p *plan) {
	fmt.Fprintf(w, "\nscenario %s: %s file, %d leechers, ideal (fluid bound) %.1f s\n\n", p.scenario, formatSize(p.size), len(p.leechers()), p.ideal().Seconds())
	fmt.Fprintln(w, "| host | up Mbit/s | down Mbit/s | RTT ms | loss % | NAT | joins s | leaves at 50 % for s |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|---|--:|--:|")
	for _, h := range p.hosts {
		leave := ""
		if h.leaves {
			leave = fmt.Sprintf("%.1f", h.away.Seconds())
		}
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %d | %.2f | %s | %.1f | %s |\n", h.name, float64(h.link.up)/mbit, float64(h.link.down)/mbit,
			h.link.rtt.Milliseconds(), h.link.loss*100, h.nat, h.joinAt.Seconds(), leave)
	}
}

// printResults writes the table and the RESULT lines.
func printResults(w io.Writer, p *plan, results []*result) {
	fmt.Fprintf(w, "\n%s: %s, %d leechers, ideal %.2f s\n\n", p.scenario, formatSize(p.size), len(p.leechers()), p.ideal().Seconds())
	fmt.Fprintln(w, "| seed | leechers | done | identical | first s | median s | last s | last / ideal | seed copies | wasted | link util | clients CPU s | lab CPU s | lab CPU ms/Mbit | loss / queue drops | lab late ms mean / max, lab drops | note |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, r := range results {
		first, median, last := spread(r.done)
		note := ""
		if r.err != nil {
			note = strings.ReplaceAll(r.err.Error(), "|", "/")
		}
		if p.scenario == "nat" {
			note = fmt.Sprintf("NATed done %d/%d, %.0f %% of their data from NATed peers; ", r.natDone, r.natTotal, 100*r.fromNATed) + note
		}
		fmt.Fprintf(w, "| %s | %s | %d/%d | %d | %.2f | %.2f | %.2f | %.2fx | %.2f | %s | %.2f | %.1f | %.1f | %.2f | %d / %d | %.1f / %.0f, %d | %s |\n",
			r.seedClient, r.leechClient, count(r.done), r.leechers, r.identical, first.Seconds(), median.Seconds(), last.Seconds(),
			last.Seconds()/r.ideal.Seconds(), float64(r.seedUp)/float64(r.size), wastedText(r), r.linkUtil,
			r.clientCPU.Seconds(), r.labCPU.Seconds(), msPerMbit(r), r.lossDrops, r.queueDrops,
			float64(r.lateMean.Microseconds())/1000, float64(r.lateMax.Microseconds())/1000, r.kernelDrops, note)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		_, _, last := spread(r.done)
		okv := 0
		if r.ok() {
			okv = 1
		}
		// The client is what varies: the seed in foreign-seed, everyone
		// otherwise.
		client := r.leechClient
		if r.scenario == "foreign-seed" {
			client = r.seedClient
		}
		// ideal_x exists only when every leecher completed.
		idealX := "na"
		if count(r.done) == r.leechers {
			idealX = strconv.FormatFloat(last.Seconds()/r.ideal.Seconds(), 'f', 3, 64)
		}
		fmt.Fprintf(w, "RESULT scenario=%s client=%s seed=%s leechers=%s ideal_x=%s seed_copies=%.3f link_util=%.3f wasted=%s cpu_s=%.1f lab_cpu_ms_per_mbit=%.2f lab_late_ms=%.1f",
			r.scenario, client, r.seedClient, r.leechClient, idealX, float64(r.seedUp)/float64(r.size), r.linkUtil,
			wastedFraction(r), r.clientCPU.Seconds(), msPerMbit(r), float64(r.lateMean.Microseconds())/1000)
		if r.scenario == "nat" {
			fmt.Fprintf(w, " nat_done=%d/%d from_nated=%.3f", r.natDone, r.natTotal, r.fromNATed)
		}
		fmt.Fprintf(w, " ok=%d\n", okv)
	}
}

// spread returns the first, median and last completion (0 for none),
// counting a leecher that did not complete as never.
func spread(done []time.Duration) (first, median, last time.Duration) {
	var d []time.Duration
	for _, t := range done {
		if t > 0 {
			d = append(d, t)
		}
	}
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	return d[0], d[len(d)/2], d[len(d)-1]
}

func count(done []time.Duration) int {
	n := 0
	for _, t := range done {
		if t > 0 {
			n++
		}
	}
	return n
}

func wastedText(r *result) string {
	if r.wasted < 0 {
		return "n/a"
	}
	return formatSize(r.wasted)
}

// wastedFraction is the bytes downloaded beyond one copy per leecher, over
// those copies; "na" when the client does not count its downloads.
func wastedFraction(r *result) string {
	if r.wasted < 0 {
		return "na"
	}
	return strconv.FormatFloat(float64(r.wasted)/float64(r.size)/float64(r.leechers), 'f', 4, 64)
}

// msPerMbit is the lab's CPU (milliseconds) per megabit it routed: a
// core's share per Mbit/s emulated.
func msPerMbit(r *result) float64 {
	if r.routedMbit == 0 {
		return 0
	}
	return float64(r.labCPU.Milliseconds()) / r.routedMbit
}

// formatSize writes n in MiB (or KiB/B when smaller).
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 || n <= -(1<<20):
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10 || n <= -(1<<10):
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " B"
	}
}
