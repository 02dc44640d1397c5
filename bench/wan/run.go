//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/sowerbt/sower/internal/wanlab"
)

// trackerHost is the lab's first host; it gets the first public address,
// which the torrents name in their announce URL.
const (
	trackerHost = "tracker"
	trackerAddr = "10.77.0.1"
	trackerPort = 6969
)

// result is what one run of a scenario measured.
type result struct {
	scenario     string
	seedClient   string
	leechClient  string
	leechers     int
	size         int64
	ideal        time.Duration
	done         []time.Duration // per leecher, from the release; 0 if it did not complete
	seedUp       int64
	wasted       int64 // downloaded beyond one copy per leecher; -1 when unknown
	linkUtil     float64
	clientCPU    time.Duration
	labCPU       time.Duration
	routedMbit   float64
	identical    int // leechers whose file is byte-identical
	natDone      int // NATed leechers complete
	natTotal     int
	fromNATed    float64 // share of NATed leechers' data that came from NATed peers
	err          error
	lossDrops    int64
	queueDrops   int64
	lateMean     time.Duration // the router's own timing error (see wanlab.Lab.Lateness)
	lateMax      time.Duration
	kernelDrops  int64 // packets the hosts' kernels dropped before the router read them
	lastComplete time.Duration
}

// ok says every leecher completed with byte-identical data.
func (r *result) ok() bool { return r.err == nil && r.identical == r.leechers }

// dataset is the file a scenario shares and its torrent.
type dataset struct {
	path    string // the file
	name    string // its name in the torrent
	torrent string
	sha     []byte
}

// runPlan runs p once: the seed with seedClient, every leecher with
// leechClient. Failures of the clients end up in the result; the error
// is for the lab itself (and interruption).
func runPlan(ctx context.Context, log *slog.Logger, p *plan, seedClient, leechClient string, ds *dataset, t *tools, work string, labSeed uint64) (*result, error) {
	res := &result{scenario: p.scenario, seedClient: seedClient, leechClient: leechClient,
		leechers: len(p.leechers()), size: p.size, ideal: p.ideal(), wasted: -1}
	lab, err := wanlab.New(ctx, wanlab.Config{Prefix: "swan", Seed: labSeed, Logger: log})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lab.Close(); err != nil {
			log.Error("lab close", "err", err)
		}
	}()
	hosts, err := buildHosts(ctx, lab, p)
	if err != nil {
		return nil, err
	}
	trk := lab.Host(trackerHost)
	if trk.Addr().String() != trackerAddr {
		return nil, fmt.Errorf("tracker host got %v, not %s", trk.Addr(), trackerAddr)
	}
	dirs := make([]string, len(hosts))
	for i, h := range hosts {
		dirs[i] = filepath.Join(work, h.Name())
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return nil, err
		}
	}
	if err := placeSeedData(ds, dirs[0]); err != nil {
		return nil, err
	}
	tdir := filepath.Join(work, trackerHost)
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return nil, err
	}
	// Sower's tracker, in memory: its store's disk writes stalled
	// announces for over 30 s on a busy machine, which is not what the
	// lab measures.
	tracker, err := startProc(trk, tdir, "tracker", nil, t.sower, "tracker",
		"--http", fmt.Sprintf("%s:%d", trackerAddr, trackerPort), "--data", "", "--interval", "30s")
	if err != nil {
		return nil, err
	}
	defer tracker.stop()

	// Start every client, the seed first so it checks while the others
	// start.
	nodes := make([]node, len(hosts))
	defer func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			if n != nil {
				wg.Go(n.stop)
			}
		}
		wg.Wait()
	}()
	launchOne := func(i int) error {
		client := leechClient
		if i == 0 {
			client = seedClient
		}
		n, err := launch(ctx, client, job{host: hosts[i], dir: dirs[i], torrent: ds.torrent, seed: i == 0, tools: t})
		if err != nil {
			return fmt.Errorf("%s (%s): %w", hosts[i].Name(), client, err)
		}
		nodes[i] = n
		return nil
	}
	if err := launchOne(0); err != nil {
		res.err = err
		return res, ctx.Err()
	}
	if err := nodes[0].start(ctx); err != nil {
		res.err = err
		return res, ctx.Err()
	}
	if err := parallel(len(hosts)-1, 4, func(i int) error { return launchOne(i + 1) }); err != nil {
		res.err = err
		return res, ctx.Err()
	}
	err = waitUntil(ctx, "the seed to check its data", startWait, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		if err := nodes[0].alive(); err != nil {
			return false, err
		}
		st, err := nodes[0].status(ctx)
		if err != nil {
			return false, retryable{err}
		}
		return st.Complete, nil
	})
	if err != nil {
		res.err = fmt.Errorf("seed (%s): %w", seedClient, err)
		return res, ctx.Err()
	}

	log.Info("release", "scenario", p.scenario, "seed", seedClient, "leechers", leechClient, "n", len(p.leechers()),
		"size", p.size, "ideal", res.ideal.Round(time.Millisecond))
	cpu0 := selfCPU()
	up0 := uplinkBytes(hosts)
	routed0 := routedBytes(hosts)
	res.done = make([]time.Duration, len(p.leechers()))
	res.err = drive(ctx, log, p, nodes, res.done, p.timeout())
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.lastComplete = slices.Max(res.done)
	elapsed := res.lastComplete
	if res.err != nil || elapsed == 0 {
		elapsed = p.timeout()
	}
	res.labCPU = selfCPU() - cpu0
	res.routedMbit = float64(routedBytes(hosts)-routed0) * 8 / 1e6
	upUsed := uplinkBytes(hosts) - up0
	var upCap float64
	for _, h := range p.hosts {
		upCap += float64(h.link.up) / 8 * elapsed.Seconds()
	}
	if p.scenario == "pair" {
		// The pair's mean payload rate over the link's rate.
		res.linkUtil = float64(p.size) / elapsed.Seconds() / (float64(min(p.hosts[0].link.up, p.hosts[1].link.down)) / 8)
	} else {
		// How much of every uplink's capacity carried packets.
		res.linkUtil = float64(upUsed) / upCap
	}
	for _, h := range hosts[1:] {
		up, down := h.Counters()
		res.lossDrops += up.LossDrops + down.LossDrops
		res.queueDrops += up.QueueDrops + down.QueueDrops
	}
	natShare(res, p, hosts)
	res.lateMean, res.lateMax = lab.Lateness()
	for _, h := range hosts {
		if d, err := h.KernelDrops(ctx); err == nil {
			res.kernelDrops += d
		}
	}

	// Snapshots of some clients' counters lag by a second.
	time.Sleep(1500 * time.Millisecond)
	if st, err := nodes[0].status(ctx); err == nil {
		res.seedUp = st.Up
	}
	var down int64
	for i, n := range nodes[1:] {
		st, err := n.status(ctx)
		if err != nil || st.Down < 0 {
			down = -1
			break
		}
		_ = i
		down += st.Down
	}
	if down >= 0 {
		res.wasted = down - int64(len(p.leechers()))*p.size
	}
	for _, n := range nodes {
		res.clientCPU += n.cpu()
	}
	res.clientCPU += tracker.cpu()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(n.stop)
	}
	wg.Wait()
	for i := range p.leechers() {
		got, err := fileSHA256(filepath.Join(dirs[i+1], ds.name))
		if err == nil && bytes.Equal(got, ds.sha) {
			res.identical++
		} else if res.done[i] > 0 && res.err == nil {
			res.err = fmt.Errorf("%s: completed but its file differs from the original (%v)", hosts[i+1].Name(), err)
		}
	}
	return res, nil
}

// buildHosts creates the tracker host, then one host per planned host.
func buildHosts(ctx context.Context, lab *wanlab.Lab, p *plan) ([]*wanlab.Host, error) {
	// The tracker's own link adds 1 ms each way and no limit.
	ms := wanlab.Link{Delay: time.Millisecond}
	if _, err := lab.AddHost(ctx, wanlab.HostConfig{Name: trackerHost, Up: ms, Down: ms}); err != nil {
		return nil, err
	}
	var hosts []*wanlab.Host
	for _, hp := range p.hosts {
		h, err := lab.AddHost(ctx, hostConfig(hp))
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// hostConfig turns a planned host into the lab's terms: a quarter of its
// RTT and half its loss each way, jitter a tenth of the delay (at most
// 2 ms).
func hostConfig(hp hostPlan) wanlab.HostConfig {
	link := func(rate int64) wanlab.Link {
		d := hp.link.rtt / 4
		return wanlab.Link{Rate: rate, Delay: d, Jitter: min(d/10, 2*time.Millisecond), Loss: hp.link.loss / 2}
	}
	nat := wanlab.NoNAT
	switch hp.nat {
	case fullCone:
		nat = wanlab.FullCone
	case symmetric:
		nat = wanlab.Symmetric
	}
	return wanlab.HostConfig{Name: hp.name, Up: link(hp.link.up), Down: link(hp.link.down), NAT: nat}
}

// drive releases the leechers and runs the timeline (late joins, leaves
// and returns) until every leecher completes, recording when each did.
func drive(ctx context.Context, log *slog.Logger, p *plan, nodes []node, done []time.Duration, timeout time.Duration) error {
	leech := nodes[1:]
	plans := p.leechers()
	began := time.Now()
	started := make([]bool, len(leech))
	leftAt := make([]time.Duration, len(leech))
	back := make([]bool, len(leech))
	failures := make([]int, len(leech))
	interval := min(max(time.Duration(len(leech))*20*time.Millisecond, 100*time.Millisecond), 500*time.Millisecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		now := time.Since(began)
		if now > timeout {
			return fmt.Errorf("not every leecher completed within %v: %s", timeout.Round(time.Second), progress(ctx, leech, done))
		}
		// Every status is asked in parallel: a slow RPC must not delay
		// the others' completion times.
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for i, n := range leech {
			if done[i] > 0 {
				continue
			}
			wg.Go(func() {
				err := step(ctx, log, n, plans[i], began, &started[i], &leftAt[i], &back[i], &done[i])
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					failures[i] = 0
					return
				}
				if aerr := n.alive(); aerr != nil {
					errs = append(errs, aerr)
					return
				}
				// An RPC can time out under load; many in a row is a failure.
				if failures[i]++; failures[i] > 30 {
					errs = append(errs, fmt.Errorf("%s: %w", plans[i].name, err))
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if !slices.Contains(done, 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// step advances one leecher's timeline and checks whether it completed.
func step(ctx context.Context, log *slog.Logger, n node, hp hostPlan, began time.Time, started *bool, leftAt *time.Duration, back *bool, done *time.Duration) error {
	if !*started {
		if time.Since(began) < hp.joinAt {
			return nil
		}
		if err := n.start(ctx); err != nil {
			return err
		}
		*started = true
		if hp.joinAt > 0 {
			log.Info("joined", "host", hp.name, "at", time.Since(began).Round(time.Millisecond))
		}
	}
	if *leftAt > 0 && !*back && time.Since(began) >= *leftAt+hp.away {
		if err := n.resume(ctx); err != nil {
			return err
		}
		*back = true
		log.Info("came back", "host", hp.name, "at", time.Since(began).Round(time.Millisecond))
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := n.status(sctx)
	cancel()
	if err != nil {
		return err
	}
	at := time.Since(began)
	if st.Complete {
		*done = at
		return nil
	}
	if hp.leaves && *leftAt == 0 && st.Have >= 0.5 {
		if err := n.pause(ctx); err != nil {
			return err
		}
		*leftAt = at
		log.Info("left", "host", hp.name, "at", at.Round(time.Millisecond), "have", fmt.Sprintf("%.2f", st.Have))
	}
	return nil
}

// progress says how far each unfinished leecher got.
func progress(ctx context.Context, leech []node, done []time.Duration) string {
	var b bytes.Buffer
	for i, n := range leech {
		if done[i] > 0 {
			continue
		}
		st, err := n.status(ctx)
		if err != nil {
			fmt.Fprintf(&b, "leech%d: %v; ", i+1, err)
			continue
		}
		fmt.Fprintf(&b, "leech%d %.1f%%; ", i+1, st.Have*100)
	}
	return b.String()
}

// natShare fills the NAT figures: how many NATed leechers completed and
// what share of the bytes they received came from other NATed hosts.
func natShare(res *result, p *plan, hosts []*wanlab.Host) {
	var fromNAT, all int64
	for i, hp := range p.hosts {
		if hp.nat == noNAT {
			continue
		}
		res.natTotal++
		if res.done[i-1] > 0 {
			res.natDone++
		}
		for j, other := range hosts {
			if j == i {
				continue
			}
			b := other.BytesTo(hosts[i])
			all += b
			if p.hosts[j].nat != noNAT {
				fromNAT += b
			}
		}
	}
	if all > 0 {
		res.fromNATed = float64(fromNAT) / float64(all)
	}
}

// uplinkBytes sums what every host's uplink carried.
func uplinkBytes(hosts []*wanlab.Host) int64 {
	var n int64
	for _, h := range hosts {
		up, _ := h.Counters()
		n += up.Bytes
	}
	return n
}

// routedBytes sums what the router delivered to the hosts.
func routedBytes(hosts []*wanlab.Host) int64 {
	var n int64
	for _, h := range hosts {
		_, down := h.Counters()
		n += down.Bytes
	}
	return n
}

// selfCPU is this process's CPU time: the router, and the driver's polls.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallel runs fn(0..n-1) with at most width at once and returns the
// first error.
func parallel(n, width int, fn func(int) error) error {
	sem := make(chan struct{}, width)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// placeSeedData puts the file into the seed's folder (a hard link when it
// can, a copy otherwise).
func placeSeedData(ds *dataset, dir string) error {
	dst := filepath.Join(dir, ds.name)
	if err := os.Link(ds.path, dst); err == nil {
		return nil
	}
	src, err := os.Open(ds.path)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return fmt.Errorf("copy seed data: %w", err)
	}
	return out.Close()
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
