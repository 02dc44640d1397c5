// Command tracker is a load generator for BitTorrent trackers. It starts
// Sower's tracker (`sower tracker`) and opentracker on 127.0.0.1, fills each
// with the same peers (many torrents, many peers) and then announces at a
// fixed concurrency over HTTP and UDP for a fixed time, reporting
// announces/s, p50/p99 latency, the tracker's CPU time per announce (from
// /proc) and its resident memory per peer. It reports; it asserts nothing.
//
// Targets sower-redis, sower-redis2 and sower-cluster run Sower on Redis
// (one instance on one redis-server, two on one, two on a 3-master
// Cluster, all started here): the load is spread over the instances, and
// the Redis servers' CPU (INFO cpu) per announce and memory (INFO memory,
// used_memory growth during the fill) per peer are reported too.
//
//	go build -o /tmp/sower ./cmd/sower
//	go run ./bench/tracker -sower /tmp/sower -duration 15s
//	go run ./bench/tracker -sower /tmp/sower -http-client raw,net/http   # both HTTP clients
//	go run ./bench/tracker -sower /tmp/sower -targets sower,sower-redis,sower-redis2,sower-cluster
//
// The default HTTP client is raw: Go's net/http client spends two to three
// times the tracker's CPU per announce on the same cores, so its latency
// figures are mostly the generator's (see docs/benchmarks.md, Tracker).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	sower, opentracker string
	redisServer        string
	redisCLI           string
	torrents, peers    int
	concurrency        int
	duration           time.Duration
	protocols, targets []string
	httpClients        []string
}

func main() {
	var o options
	var protos, targets, httpClients string
	flag.StringVar(&o.sower, "sower", "", "path of the sower binary (required for the sower target)")
	flag.StringVar(&o.opentracker, "opentracker", "/usr/bin/opentracker", "path of opentracker")
	flag.StringVar(&o.redisServer, "redis-server", "/usr/bin/redis-server", "path of redis-server (targets sower-redis, sower-redis2, sower-cluster)")
	flag.StringVar(&o.redisCLI, "redis-cli", "/usr/bin/redis-cli", "path of redis-cli (target sower-cluster)")
	flag.IntVar(&o.torrents, "torrents", 10_000, "distinct info-hashes")
	flag.IntVar(&o.peers, "peers", 100_000, "distinct peers, spread evenly over the torrents")
	flag.IntVar(&o.concurrency, "c", 64, "concurrent clients")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "load time per target and protocol")
	flag.StringVar(&protos, "proto", "http,udp", "protocols to load")
	flag.StringVar(&targets, "targets", "sower,opentracker", "trackers to load: sower (embedded store), opentracker, sower-redis (one instance on Redis), "+
		"sower-redis2 (two instances on one Redis), sower-cluster (two instances on a 3-master Redis Cluster)")
	flag.StringVar(&httpClients, "http-client", "raw", "HTTP load clients, comma-separated, each run in turn: raw (one request line and a header parser "+
		"over a kept TCP connection, a third of net/http's CPU per announce, so that the tracker rather than the generator is measured) "+
		"or net/http (Go's client, as earlier tables used)")
	flag.Parse()
	o.protocols, o.targets = strings.Split(protos, ","), strings.Split(targets, ",")
	o.httpClients = strings.Split(httpClients, ",")
	// An interrupted run stops the trackers it started (exec.CommandContext
	// kills them when ctx ends) instead of leaving them running.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/tracker:", err)
		os.Exit(1)
	}
}

// swarmData is the fixed population announced to every target.
type swarmData struct {
	hashes [][20]byte
	ids    [][20]byte
}

func newSwarmData(torrents, peers int) swarmData {
	d := swarmData{hashes: make([][20]byte, torrents), ids: make([][20]byte, peers)}
	for i := range d.hashes {
		rand.Read(d.hashes[i][:])
	}
	for i := range d.ids {
		copy(d.ids[i][:], fmt.Sprintf("-BN0001-%012d", i))
	}
	return d
}

// peer i belongs to torrent i%torrents and listens on a port unique in it.
func (d swarmData) peer(i int) (ih, id [20]byte, port uint16) {
	return d.hashes[i%len(d.hashes)], d.ids[i], uint16(1024 + i/len(d.hashes)%60000)
}

// target is one tracker set-up under load: one or more tracker processes
// (the load is spread over them), and the Redis servers they share, if any.
type target struct {
	name     string
	pids     []int // tracker processes
	httpURLs []string
	udpAddrs []string
	redis    []string // host:port of the Redis masters, for INFO
	redisPid []int
}

func (tg *target) httpURL(w int) string { return tg.httpURLs[w%len(tg.httpURLs)] }
func (tg *target) udpAddr(w int) string { return tg.udpAddrs[w%len(tg.udpAddrs)] }

func run(ctx context.Context, o options, out io.Writer) error {
	data := newSwarmData(o.torrents, o.peers)
	for _, c := range o.httpClients {
		if c != "net/http" && c != "raw" {
			return fmt.Errorf("-http-client %q: want net/http or raw", c)
		}
	}
	fmt.Fprintf(out, "%d torrents, %d peers, %d concurrent clients, %v per run, GOMAXPROCS host %d CPUs, HTTP clients %s\n\n",
		o.torrents, o.peers, o.concurrency, o.duration, numCPU(), strings.Join(o.httpClients, ", "))
	fmt.Fprintln(out, "| tracker | protocol | announces/s | p50 | p99 | errors | tracker CPU µs/announce | Redis CPU µs/announce | generator CPU µs/announce | generator GCs | tracker RSS after fill | tracker bytes/peer | Redis bytes/peer |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, name := range o.targets {
		tg, cleanup, err := startTarget(ctx, name, o, data)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		err = benchTarget(ctx, tg, o, data, out)
		cleanup()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func numCPU() int {
	n := 0
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "processor") {
			n++
		}
	}
	return n
}

func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			u.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port")
}

// startTarget starts a target: "sower" (embedded store), "opentracker",
// "sower-redis" (one instance on one redis-server), "sower-redis2" (two
// instances on one redis-server) or "sower-cluster" (two instances on a
// 3-master Redis Cluster).
func startTarget(ctx context.Context, name string, o options, data swarmData) (_ *target, _ func(), err error) {
	dir, err := os.MkdirTemp("", "bench-tracker-")
	if err != nil {
		return nil, nil, err
	}
	tg := &target{name: name}
	var stops []func()
	cleanup := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	start := func(tag string, port int, cmd *exec.Cmd) error {
		stop, err := startProc(cmd, filepath.Join(dir, tag+".log"), tag)
		if err != nil {
			return err
		}
		stops = append(stops, stop)
		return nil
	}
	startSower := func(n int, store []string) error {
		if o.sower == "" {
			return errors.New("-sower PATH is required")
		}
		for i := range n {
			port, err := freePort()
			if err != nil {
				return err
			}
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			args := []string{"tracker", "--http", addr, "--udp", addr, "--data", ""}
			for _, s := range store {
				args = append(args, "--store", s)
			}
			cmd := exec.CommandContext(ctx, o.sower, args...)
			if err := start(fmt.Sprintf("sower%d", i), port, cmd); err != nil {
				return err
			}
			tg.pids = append(tg.pids, cmd.Process.Pid)
			tg.httpURLs = append(tg.httpURLs, "http://"+addr+"/announce")
			tg.udpAddrs = append(tg.udpAddrs, addr)
		}
		return nil
	}
	startRedis := func(tag string, extra ...string) (string, error) {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		rdir := filepath.Join(dir, tag)
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return "", err
		}
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", rdir, "--save", "",
			"--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--logfile", ""}, extra...)
		cmd := exec.CommandContext(ctx, o.redisServer, args...)
		if err := start(tag, port, cmd); err != nil {
			return "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if _, err := redisInfo(addr, "server"); err == nil {
				break
			} else if time.Now().After(deadline) {
				return "", fmt.Errorf("%s did not answer: %w", tag, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		tg.redisPid = append(tg.redisPid, cmd.Process.Pid)
		return addr, nil
	}
	switch name {
	case "sower":
		err = startSower(1, nil)
	case "sower-redis", "sower-redis2":
		var addr string
		if addr, err = startRedis("redis"); err == nil {
			tg.redis = []string{addr}
			n := 1
			if name == "sower-redis2" {
				n = 2
			}
			err = startSower(n, []string{"redis://" + addr})
		}
	case "sower-cluster":
		var seeds []string
		for i := range 3 {
			addr, err := startRedis(fmt.Sprintf("redis%d", i), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
			if err != nil {
				return nil, nil, err
			}
			tg.redis = append(tg.redis, addr)
		}
		args := append([]string{"--cluster", "create"}, tg.redis...)
		out, cerr := exec.CommandContext(ctx, o.redisCLI, append(args, "--cluster-yes")...).CombinedOutput()
		if cerr != nil {
			return nil, nil, fmt.Errorf("redis-cli --cluster create: %w: %s", cerr, out)
		}
		for deadline := time.Now().Add(20 * time.Second); ; {
			info, err := redisInfo(tg.redis[0], "cluster")
			if err == nil && strings.Contains(info, "cluster_enabled:1") {
				state, _ := exec.CommandContext(ctx, o.redisCLI, "-h", "127.0.0.1", "-p", strings.TrimPrefix(tg.redis[0], "127.0.0.1:"), "cluster", "info").Output()
				if strings.Contains(string(state), "cluster_state:ok") {
					break
				}
			}
			if time.Now().After(deadline) {
				return nil, nil, errors.New("cluster not ok within 20s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, a := range tg.redis {
			seeds = append(seeds, "redis://"+a)
		}
		err = startSower(2, seeds)
	case "opentracker":
		port, perr := freePort()
		if perr != nil {
			return nil, nil, perr
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		// Debian's opentracker tracks only whitelisted torrents.
		var wl strings.Builder
		for _, h := range data.hashes {
			fmt.Fprintf(&wl, "%x\n", h)
		}
		os.Chmod(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "whitelist"), []byte(wl.String()), 0o644); err != nil {
			return nil, nil, err
		}
		args := []string{"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-P", strconv.Itoa(port), "-d", dir, "-w", "whitelist"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		cmd := exec.CommandContext(ctx, o.opentracker, args...)
		if err = start("opentracker", port, cmd); err == nil {
			tg.pids = []int{cmd.Process.Pid}
			tg.httpURLs = []string{"http://" + addr + "/announce"}
			tg.udpAddrs = []string{addr}
		}
	default:
		err = fmt.Errorf("unknown target %q", name)
	}
	if err != nil {
		return nil, nil, err
	}
	// Wait until every tracker answers an announce.
	hc := &http.Client{Timeout: time.Second}
	for _, u := range tg.httpURLs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ih, id, p := data.peer(0)
			resp, err := hc.Get(announceURL(u, ih, id, p, 0, "stopped"))
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("%s did not answer within 10s: %w", u, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return tg, cleanup, nil
}

// startProc starts cmd with its output in logPath and returns the function
// that stops it (SIGTERM, then SIGKILL after 5 s). A process that died on
// its own is reported with the tail of its log: the figures are void.
func startProc(cmd *exec.Cmd, logPath, tag string) (func(), error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	return func() {
		select {
		case <-done:
			log, _ := os.ReadFile(logPath)
			fmt.Fprintf(os.Stderr, "%s exited during the run (%v); log tail:\n%s\n", tag, waitErr, log[max(0, len(log)-4000):])
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		logf.Close()
	}, nil
}

// redisInfo returns the text of INFO section from the Redis at addr.
func redisInfo(addr, section string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "INFO %s\r\n", section); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(head, "$") {
		return "", fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil {
		return "", err
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// redisField returns a numeric field of INFO text.
func redisField(info, name string) float64 {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// redisStats sums the Redis servers' CPU seconds (INFO cpu) and memory in
// use (INFO memory, used_memory) of a target.
func redisStats(tg *target) (cpu float64, mem float64) {
	for _, a := range tg.redis {
		if info, err := redisInfo(a, "cpu"); err == nil {
			cpu += redisField(info, "used_cpu_sys") + redisField(info, "used_cpu_user")
		}
		if info, err := redisInfo(a, "memory"); err == nil {
			mem += redisField(info, "used_memory")
		}
	}
	return cpu, mem
}

// escapeBytes percent-encodes every byte but the unreserved ones, as
// BitTorrent clients do. url.QueryEscape would turn a 0x20 byte into '+',
// which trackers (opentracker and Sower alike) read as a literal '+': one
// info-hash in thirteen would then name another torrent.
func escapeBytes(b []byte) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

func announceURL(base string, ih, id [20]byte, port uint16, left int64, event string) string {
	u := base + "?info_hash=" + escapeBytes(ih[:]) + "&peer_id=" + escapeBytes(id[:]) +
		"&port=" + strconv.Itoa(int(port)) + "&uploaded=0&downloaded=0&left=" + strconv.FormatInt(left, 10) + "&compact=1&numwant=50"
	if event != "" {
		u += "&event=" + event
	}
	return u
}

// procStats reads a process's CPU time and resident memory from /proc.
func procStats(pid int) (cpu time.Duration, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(st2)))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			rss = kb << 10
		}
	}
	return cpu, rss, nil
}

func benchTarget(ctx context.Context, tg *target, o options, data swarmData, out io.Writer) error {
	stats := func() (cpu time.Duration, rss int64, err error) {
		for _, pid := range tg.pids {
			c, r, err := procStats(pid)
			if err != nil {
				return 0, 0, err
			}
			cpu += c
			rss += r
		}
		return cpu, rss, nil
	}
	_, rss0, err := stats()
	if err != nil {
		return err
	}
	_, rmem0 := redisStats(tg)
	// Fill: every peer announces once (UDP, the cheaper path for both).
	fill := func(w int) (loadWorker, error) { return newUDPWorker(tg.udpAddr(w)) }
	if _, err := drive(ctx, o.concurrency, 0, o.peers, fill, data); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	_, rss1, err := stats()
	if err != nil {
		return err
	}
	_, rmem1 := redisStats(tg)
	perPeer := float64(rss1-rss0) / float64(o.peers)
	redisPerPeer := (rmem1 - rmem0) / float64(o.peers)
	// Each HTTP client is a load of its own, reported as "http (client)".
	var loads []string
	for _, proto := range o.protocols {
		if proto != "http" {
			loads = append(loads, proto)
			continue
		}
		for _, c := range o.httpClients {
			loads = append(loads, "http ("+c+")")
		}
	}
	for _, load := range loads {
		var mk func(int) (loadWorker, error)
		switch load {
		case "http (raw)":
			mk = func(w int) (loadWorker, error) { return newRawHTTPWorker(tg.httpURL(w)) }
		case "http (net/http)":
			tr := &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency, DisableCompression: true}
			hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			mk = func(w int) (loadWorker, error) { return &httpWorker{hc: hc, base: tg.httpURL(w)}, nil }
			defer tr.CloseIdleConnections()
		case "udp":
			mk = func(w int) (loadWorker, error) { return newUDPWorker(tg.udpAddr(w)) }
		default:
			return fmt.Errorf("unknown protocol %q", load)
		}
		cpu0, _, _ := stats()
		rcpu0, _ := redisStats(tg)
		gen0, _, _ := procStats(os.Getpid())
		gc0 := numGC()
		res, err := drive(ctx, o.concurrency, o.duration, o.peers, mk, data)
		if err != nil {
			return fmt.Errorf("%s load: %w", load, err)
		}
		cpu1, _, _ := stats()
		rcpu1, _ := redisStats(tg)
		gen1, _, _ := procStats(os.Getpid())
		gcs := numGC() - gc0
		n := len(res.lat)
		slices.Sort(res.lat)
		pct := func(p float64) time.Duration {
			if n == 0 {
				return 0
			}
			return res.lat[min(n-1, int(math.Ceil(p*float64(n)))-1)]
		}
		if res.firstErr != nil {
			fmt.Fprintf(os.Stderr, "%s %s: %d errors, e.g. %v\n", tg.name, load, res.errors, res.firstErr)
		}
		cpuPer := float64(cpu1-cpu0) / float64(time.Microsecond) / math.Max(1, float64(n))
		genPer := float64(gen1-gen0) / float64(time.Microsecond) / math.Max(1, float64(n))
		redisCPU, redisMem := "-", "-"
		if len(tg.redis) > 0 {
			redisCPU = fmt.Sprintf("%.1f", (rcpu1-rcpu0)*1e6/math.Max(1, float64(n)))
			redisMem = fmt.Sprintf("%.0f", redisPerPeer)
		}
		fmt.Fprintf(out, "| %s | %s | %.0f | %v | %v | %d | %.1f | %s | %.1f | %d | %.1f MB | %.0f | %s |\n", tg.name, load,
			float64(n)/res.elapsed.Seconds(), pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond),
			res.errors, cpuPer, redisCPU, genPer, gcs, float64(rss1)/1e6, perPeer, redisMem)
	}
	return nil
}

// numGC is how many garbage collections the generator has run: each one
// stops its goroutines briefly and slows those that allocate, which shows
// up in the latencies it measures.
func numGC() int64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// loadWorker announces peer i once.
type loadWorker interface {
	announce(ih, id [20]byte, port uint16, left int64) error
	close()
}

type result struct {
	lat      []time.Duration
	errors   int
	firstErr error // an example of what the errors were
	elapsed  time.Duration
}

// drive runs conc workers: with d == 0 each peer announces once in order;
// otherwise random peers announce until d has passed.
func drive(ctx context.Context, conc int, d time.Duration, peers int, mk func(int) (loadWorker, error), data swarmData) (result, error) {
	var mu sync.Mutex
	var res result
	var next int64
	var nextMu sync.Mutex
	stopAt := time.Now().Add(d)
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	begin := time.Now()
	for w := range conc {
		wk, err := mk(w)
		if err != nil {
			return res, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer wk.close()
			rng := mrand.New(mrand.NewPCG(uint64(w), 7))
			lat := make([]time.Duration, 0, 1<<14)
			errs := 0
			var firstErr error
			for ctx.Err() == nil {
				var i int
				if d == 0 {
					nextMu.Lock()
					i = int(next)
					next++
					nextMu.Unlock()
					if i >= peers {
						break
					}
				} else {
					if time.Now().After(stopAt) {
						break
					}
					i = rng.IntN(peers)
				}
				ih, id, port := data.peer(i)
				left := int64(0)
				if i%3 != 0 {
					left = 1 << 20
				}
				t0 := time.Now()
				if err := wk.announce(ih, id, port, left); err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					if errs > 1000 && len(lat) == 0 {
						errc <- err
						return
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(begin)
	close(errc)
	if err := <-errc; err != nil {
		return res, err
	}
	return res, nil
}

type httpWorker struct {
	hc   *http.Client
	base string
}

func (h *httpWorker) announce(ih, id [20]byte, port uint16, left int64) error {
	resp, err := h.hc.Get(announceURL(h.base, ih, id, port, left, ""))
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || strings.Contains(string(b), "failure reason") {
		return fmt.Errorf("status %d: %.100q", resp.StatusCode, b)
	}
	return nil
}

func (h *httpWorker) close() {}

// rawHTTPWorker announces over a plain TCP connection: it writes the
// request line and a Host header and reads the answer's head and body by
// its Content-Length. It keeps the connection unless the tracker closes it
// (opentracker closes after every answer), then dials again.
type rawHTTPWorker struct {
	addr, host, path string
	conn             net.Conn
	br               *bufio.Reader
	req              []byte
	body             []byte
}

func newRawHTTPWorker(base string) (*rawHTTPWorker, error) {
	rest, ok := strings.CutPrefix(base, "http://")
	host, path, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return nil, fmt.Errorf("raw HTTP client: cannot use URL %q", base)
	}
	return &rawHTTPWorker{addr: host, host: host, path: "/" + path}, nil
}

func (h *rawHTTPWorker) announce(ih, id [20]byte, port uint16, left int64) error {
	u := announceURL(h.path, ih, id, port, left, "")
	h.req = append(append(append(append(h.req[:0], "GET "...), u...), " HTTP/1.1\r\nHost: "...), h.host...)
	h.req = append(h.req, "\r\n\r\n"...)
	// A kept connection may have been closed by the tracker since its
	// last answer (opentracker answers HTTP/1.1 without "Connection:
	// close" and closes): then, as net/http does, try once more on a new
	// one. The time of the failed attempt counts in the latency.
	for attempt := 0; ; attempt++ {
		reused := h.conn != nil
		if !reused {
			c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
			if err != nil {
				return err
			}
			h.conn, h.br = c, bufio.NewReaderSize(c, 4096)
		}
		h.conn.SetDeadline(time.Now().Add(5 * time.Second))
		gotHead, err := h.exchange()
		if err == nil {
			return nil
		}
		if h.conn != nil {
			h.conn.Close()
			h.conn = nil
		}
		if !reused || gotHead || attempt > 0 {
			return err
		}
	}
}

// exchange writes the request and reads the answer; it closes and forgets
// the connection when the tracker asks for that. gotHead reports whether
// any of an answer arrived.
func (h *rawHTTPWorker) exchange() (gotHead bool, err error) {
	if _, err := h.conn.Write(h.req); err != nil {
		return false, err
	}
	status, err := h.br.ReadSlice('\n')
	if err != nil {
		return len(status) > 0, err
	}
	if !strings.HasPrefix(string(status), "HTTP/1.1 200 ") && !strings.HasPrefix(string(status), "HTTP/1.0 200 ") {
		return true, fmt.Errorf("status line %.60q", status)
	}
	length, closing := -1, strings.HasPrefix(string(status), "HTTP/1.0")
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return true, err
		}
		l := strings.TrimRight(string(line), "\r\n")
		if l == "" {
			break
		}
		name, value, _ := strings.Cut(l, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.Atoi(value); err != nil {
				return true, fmt.Errorf("content-length %q", value)
			}
		case "connection":
			switch strings.ToLower(value) {
			case "close":
				closing = true
			case "keep-alive":
				closing = false
			}
		}
	}
	if length >= 0 {
		h.body = slices.Grow(h.body[:0], length)[:length]
		if _, err := io.ReadFull(h.br, h.body); err != nil {
			return true, err
		}
	} else if closing {
		if h.body, err = io.ReadAll(h.br); err != nil {
			return true, err
		}
	} else {
		return true, errors.New("answer without Content-Length on a kept connection")
	}
	if strings.Contains(string(h.body), "failure reason") {
		return true, fmt.Errorf("%.100q", h.body)
	}
	if closing {
		h.conn.Close()
		h.conn = nil
	}
	return true, nil
}

func (h *rawHTTPWorker) close() {
	if h.conn != nil {
		h.conn.Close()
	}
}

// udpWorker is one BEP 15 client with its own socket.
type udpWorker struct {
	conn   *net.UDPConn
	connID uint64
	got    time.Time
	buf    []byte
	tid    uint32
}

func newUDPWorker(addr string) (*udpWorker, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, err
	}
	return &udpWorker{conn: c, buf: make([]byte, 2048)}, nil
}

func (u *udpWorker) exchange(pkt []byte) ([]byte, error) {
	u.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := u.conn.Write(pkt); err != nil {
		return nil, err
	}
	for {
		n, err := u.conn.Read(u.buf)
		if err != nil {
			return nil, err
		}
		if n >= 8 && binary.BigEndian.Uint32(u.buf[4:]) == u.tid {
			if binary.BigEndian.Uint32(u.buf) == 3 {
				return nil, fmt.Errorf("tracker error: %s", u.buf[8:n])
			}
			return u.buf[:n], nil
		}
	}
}

func (u *udpWorker) announce(ih, id [20]byte, port uint16, left int64) error {
	if time.Since(u.got) > 50*time.Second {
		u.tid++
		p := binary.BigEndian.AppendUint64(nil, 0x41727101980)
		p = binary.BigEndian.AppendUint32(p, 0)
		p = binary.BigEndian.AppendUint32(p, u.tid)
		r, err := u.exchange(p)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		if len(r) < 16 {
			return errors.New("short connect answer")
		}
		u.connID, u.got = binary.BigEndian.Uint64(r[8:]), time.Now()
	}
	u.tid++
	p := make([]byte, 98)
	binary.BigEndian.PutUint64(p, u.connID)
	binary.BigEndian.PutUint32(p[8:], 1)
	binary.BigEndian.PutUint32(p[12:], u.tid)
	copy(p[16:], ih[:])
	copy(p[36:], id[:])
	binary.BigEndian.PutUint64(p[64:], uint64(left))
	binary.BigEndian.PutUint32(p[92:], 50)
	binary.BigEndian.PutUint16(p[96:], port)
	r, err := u.exchange(p)
	if err != nil {
		return err
	}
	if len(r) < 20 {
		return errors.New("short announce answer")
	}
	return nil
}

func (u *udpWorker) close() { u.conn.Close() }
