// Command daemonbench compares the idle cost of many seeded torrents in
// `sower daemon`, transmission-daemon and qbittorrent-nox, in one run on
// the same generated data: time to add and verify them all, resident
// memory and CPU per idle torrent, the latency of listing them all over
// each client's RPC, and memory after repeated listing. It reports; it
// asserts nothing. See docs/benchmarks.md, section "Daemon".
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sowerbt/sower/metainfo"
)

func main() {
	n := flag.Int("n", 1000, "torrents")
	size := flag.Int("size", 64<<10, "bytes per torrent")
	sower := flag.String("sower", "", "sower binary (required)")
	clients := flag.String("clients", "sower,transmission,qbittorrent", "clients to measure, comma-separated")
	lists := flag.Int("lists", 20, "full listings to time")
	idle := flag.Duration("idle", 10*time.Second, "idle window for the CPU measurement")
	settle := flag.Duration("settle", 45*time.Second, "wait after all torrents seed before measuring idle memory (Sower parks idle seeds after 30 s)")
	restart := flag.Int64("restart", 0, "instead: restart-to-seeding of one torrent of this many bytes (clean stop and SIGKILL)")
	marginal := flag.Bool("marginal", false, "also add n more torrents after the idle measurement and report the marginal cost per torrent, (RSS at 2n - RSS at n) / n, which leaves out one-time costs such as code pages first touched; the full lists then run at 2n")
	smaps := flag.Bool("smaps", false, "also print each client's resident memory by mapping (from /proc/PID/smaps) at n (and 2n)")
	flag.Parse()
	if *restart > 0 {
		restartBench(*sower, *clients, *restart)
		return
	}
	work, err := os.MkdirTemp("", "daemonbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	total := *n
	if *marginal {
		total = 2 * *n
	}
	torrents := generate(work, total, *size)
	listedAt := *n
	if *marginal {
		listedAt = total
	}
	fmt.Printf("%d torrents of %d bytes; settle %s; idle window %s; %d full lists of %d torrents\n\n", *n, *size, *settle, *idle, *lists, listedAt)
	fmt.Print("| client | base RSS MiB | RSS per torrent KiB | of which anon KiB |")
	if *marginal {
		fmt.Print(" marginal RSS per torrent KiB | of which anon KiB |")
	}
	fmt.Println(" add+verify s | idle CPU % | full list ms | RSS after lists MiB |")
	fmt.Print("|---|---:|---:|---:|")
	if *marginal {
		fmt.Print("---:|---:|")
	}
	fmt.Println("---:|---:|---:|---:|")
	var notes []string
	for _, name := range strings.Split(*clients, ",") {
		var c client
		switch name {
		case "sower":
			c = &transmissionLike{bin: *sower, sower: true}
		case "transmission":
			c = &transmissionLike{bin: "transmission-daemon"}
		case "qbittorrent":
			c = &qbit{}
		default:
			log.Fatalf("unknown client %q", name)
		}
		r, err := measure(c, filepath.Join(work, name), filepath.Join(work, "data"), torrents, *n, *lists, *settle, *idle, *smaps)
		if err != nil {
			log.Printf("%s: %v", name, err)
			continue
		}
		per := float64(*n)
		fmt.Printf("| %s | %.1f | %.1f | %.1f |", name, float64(r.baseRSS)/1024, float64(r.rss-r.baseRSS)/per, float64(r.anon-r.baseAnon)/per)
		if *marginal {
			fmt.Printf(" %.1f | %.1f |", float64(r.rss2-r.rss)/per, float64(r.anon2-r.anon)/per)
		}
		fmt.Printf(" %.1f | %.2f | %.1f | %.1f |\n", r.addVerify.Seconds(), r.idleCPU, float64(r.list.Microseconds())/1000, float64(r.rssAfter)/1024)
		for _, m := range r.maps {
			notes = append(notes, name+" "+m)
		}
	}
	if len(notes) > 0 {
		fmt.Println()
		for _, m := range notes {
			fmt.Println(m)
		}
	}
}

// generate writes n files of random data and their .torrent files.
func generate(work string, n, size int) [][]byte {
	data := filepath.Join(work, "data")
	os.MkdirAll(data, 0o755)
	out := make([][]byte, n)
	buf := make([]byte, size)
	for i := range n {
		rand.Read(buf)
		p := filepath.Join(data, fmt.Sprintf("file%05d.bin", i))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			log.Fatal(err)
		}
		mi, err := metainfo.Build(context.Background(), p, metainfo.BuildOptions{NoDate: true, Workers: 1}, nil)
		if err != nil {
			log.Fatal(err)
		}
		if out[i], err = mi.Encode(); err != nil {
			log.Fatal(err)
		}
	}
	return out
}

type result struct {
	baseRSS, rss, rssAfter int64 // KiB
	baseAnon, anon         int64 // KiB, the RssAnon part
	rss2, anon2            int64 // KiB, with twice the torrents (-marginal)
	addVerify, list        time.Duration
	idleCPU                float64
	maps                   []string // resident memory by mapping (-smaps)
}

// client is one BitTorrent daemon under test.
type client interface {
	start(dir, data string, rpcPort, peerPort int) (*exec.Cmd, error)
	ready() error
	add(torrent []byte, data string) error
	// seeding counts torrents that are verified and seeding.
	seeding() (int, error)
	// list fetches the full torrent list once.
	list() error
}

// measure adds the first n of torrents, measures the idle cost, adds the
// rest (if any) and measures again, then times the full lists.
func measure(c client, dir, data string, torrents [][]byte, n, lists int, settle, idle time.Duration, smaps bool) (result, error) {
	var r result
	os.MkdirAll(dir, 0o755)
	cmd, err := c.start(dir, data, freePort(), freePort())
	if err != nil {
		return r, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for c.ready() != nil {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("RPC not ready: %v", c.ready())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	r.baseRSS = rssKiB(cmd.Process.Pid)
	r.baseAnon = statusKiB(cmd.Process.Pid, "RssAnon:")
	pid := cmd.Process.Pid
	start := time.Now()
	if err := addAll(c, torrents[:n], data, n); err != nil {
		return r, err
	}
	r.addVerify = time.Since(start)
	time.Sleep(settle) // the same for every client
	r.rss = rssKiB(pid)
	r.anon = statusKiB(pid, "RssAnon:")
	if smaps {
		r.maps = append(r.maps, fmt.Sprintf("at %d: %s", n, mapsSummary(pid)))
	}
	cpu0, t0 := cpuTicks(pid), time.Now()
	time.Sleep(idle)
	r.idleCPU = float64(cpuTicks(pid)-cpu0) / 100 / time.Since(t0).Seconds() * 100
	if len(torrents) > n {
		// The same again: what one more torrent costs once the one-time
		// costs (code first run, runtime and database set-up) are paid.
		if err := addAll(c, torrents[n:], data, len(torrents)); err != nil {
			return r, err
		}
		time.Sleep(settle)
		r.rss2 = rssKiB(pid)
		r.anon2 = statusKiB(pid, "RssAnon:")
		if smaps {
			r.maps = append(r.maps, fmt.Sprintf("at %d: %s", len(torrents), mapsSummary(pid)))
		}
	}
	start = time.Now()
	for range lists {
		if err := c.list(); err != nil {
			return r, fmt.Errorf("list: %w", err)
		}
	}
	r.list = time.Since(start) / time.Duration(lists)
	r.rssAfter = rssKiB(pid)
	return r, nil
}

// addAll adds torrents and waits until want torrents in all are verified
// and seeding.
func addAll(c client, torrents [][]byte, data string, want int) error {
	for _, t := range torrents {
		if err := c.add(t, data); err != nil {
			return fmt.Errorf("add: %w", err)
		}
	}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		n, err := c.seeding()
		if err == nil && n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d seeding after 15 min (%v)", n, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// mapsSummary sums the resident memory of a process by mapping name from
// /proc/PID/smaps: [anon] for anonymous mappings (heap, stacks), the path
// of each mapped file (the program, its libraries, a mapped database),
// the largest six first, then the sum of the others, and how much of it
// is in transparent huge pages (AnonHugePages).
func mapsSummary(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err.Error()
	}
	sums := map[string]int64{}
	name := ""
	var huge int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			name = "[anon]"
			if len(f) >= 6 {
				name = filepath.Base(f[5])
			}
		case len(f) >= 2 && f[0] == "Rss:":
			v, _ := strconv.ParseInt(f[1], 10, 64)
			sums[name] += v
		case len(f) >= 2 && f[0] == "AnonHugePages:":
			v, _ := strconv.ParseInt(f[1], 10, 64)
			huge += v
		}
	}
	names := make([]string, 0, len(sums))
	for k := range sums {
		if sums[k] > 0 {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(sums[b], sums[a]) })
	var out []string
	rest := int64(0)
	for i, k := range names {
		if i < 6 {
			out = append(out, fmt.Sprintf("%s %d KiB", k, sums[k]))
		} else {
			rest += sums[k]
		}
	}
	if rest > 0 {
		out = append(out, fmt.Sprintf("%d others %d KiB", len(names)-6, rest))
	}
	out = append(out, fmt.Sprintf("of all that in transparent huge pages %d KiB", huge))
	return strings.Join(out, ", ")
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func rssKiB(pid int) int64 { return statusKiB(pid, "VmRSS:") }

// statusKiB reads one field of /proc/PID/status: VmRSS is RssAnon (heap,
// stacks) plus RssFile (mapped files: the program's own code, mapped
// databases) plus RssShmem.
func statusKiB(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// cpuTicks is user+system time in clock ticks (100 per second on Linux).
func cpuTicks(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// transmissionLike drives transmission-daemon or sower daemon through the
// Transmission RPC, the same requests for both.
type transmissionLike struct {
	bin   string
	sower bool
	url   string
	token string
	hc    http.Client
}

func (t *transmissionLike) start(dir, data string, rpcPort, peerPort int) (*exec.Cmd, error) {
	t.url = fmt.Sprintf("http://127.0.0.1:%d/transmission/rpc", rpcPort)
	var cmd *exec.Cmd
	if t.sower {
		args := []string{"daemon", "--rpc", fmt.Sprintf("127.0.0.1:%d", rpcPort), "--port", strconv.Itoa(peerPort),
			"--data", dir, "--download-dir", data}
		// The DHT off, as for Transmission (-O), where the binary has
		// it: builds before the session layer had no DHT in the daemon.
		if help, _ := exec.Command(t.bin, "daemon", "--help").CombinedOutput(); bytes.Contains(help, []byte("--no-dht")) {
			args = append(args, "--no-dht")
		}
		cmd = exec.Command(t.bin, args...)
	} else {
		cmd = exec.Command(t.bin, "-f", "-g", dir, "-p", strconv.Itoa(rpcPort), "-P", strconv.Itoa(peerPort), "-T", "-w", data,
			"-O", "-Y", "-M", "--no-incomplete-dir", "-r", "127.0.0.1", "--log-error")
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	return cmd, cmd.Start()
}

func (t *transmissionLike) call(method string, args any) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"method": method, "arguments": args})
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
		req.Header.Set("X-Transmission-Session-Id", t.token)
		resp, err := t.hc.Do(req)
		if err != nil {
			return nil, err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusConflict {
			t.token = resp.Header.Get("X-Transmission-Session-Id")
			continue
		}
		var r struct {
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("HTTP %d: %q", resp.StatusCode, data)
		}
		if r.Result != "success" {
			return nil, fmt.Errorf("%s: %s", method, r.Result)
		}
		return r.Arguments, nil
	}
	return nil, fmt.Errorf("%s: 409 twice", method)
}

func (t *transmissionLike) ready() error {
	_, err := t.call("session-get", nil)
	return err
}

func (t *transmissionLike) add(torrent []byte, data string) error {
	_, err := t.call("torrent-add", map[string]any{"metainfo": base64.StdEncoding.EncodeToString(torrent), "download-dir": data})
	return err
}

// listFields is what `transmission-remote -l` asks for.
var listFields = []string{"error", "errorString", "eta", "id", "isFinished", "leftUntilDone", "name", "peersGettingFromUs",
	"peersSendingToUs", "rateDownload", "rateUpload", "sizeWhenDone", "status", "uploadRatio"}

func (t *transmissionLike) seeding() (int, error) {
	args, err := t.call("torrent-get", map[string]any{"fields": []string{"status", "percentDone"}})
	if err != nil {
		return 0, err
	}
	var r struct {
		Torrents []struct {
			Status      int     `json:"status"`
			PercentDone float64 `json:"percentDone"`
		} `json:"torrents"`
	}
	json.Unmarshal(args, &r)
	n := 0
	for _, x := range r.Torrents {
		if x.Status == 6 && x.PercentDone == 1 {
			n++
		}
	}
	return n, nil
}

func (t *transmissionLike) list() error {
	_, err := t.call("torrent-get", map[string]any{"fields": listFields})
	return err
}

// qbit drives qbittorrent-nox through its Web API.
type qbit struct {
	base string
	hc   http.Client
}

func (q *qbit) start(dir, data string, rpcPort, peerPort int) (*exec.Cmd, error) {
	q.base = fmt.Sprintf("http://127.0.0.1:%d", rpcPort)
	conf := filepath.Join(dir, "qBittorrent", "config")
	os.MkdirAll(conf, 0o755)
	ini := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=%d
Session\QueueingSystemEnabled=false
Session\DefaultSavePath=%s

[Preferences]
WebUI\Port=%d
WebUI\Address=127.0.0.1
WebUI\LocalHostAuth=false
WebUI\CSRFProtection=false
WebUI\HostHeaderValidation=false
`, peerPort, data, rpcPort)
	if err := os.WriteFile(filepath.Join(conf, "qBittorrent.conf"), []byte(ini), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("qbittorrent-nox", "--profile="+dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	return cmd, cmd.Start()
}

func (q *qbit) ready() error {
	resp, err := q.hc.Get(q.base + "/api/v2/app/version")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

func (q *qbit) add(torrent []byte, data string) error {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, _ := w.CreateFormFile("torrents", "x.torrent")
	fw.Write(torrent)
	w.WriteField("savepath", data)
	w.Close()
	resp, err := q.hc.Post(q.base+"/api/v2/torrents/add", w.FormDataContentType(), &body)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

func (q *qbit) info() ([]struct {
	State    string  `json:"state"`
	Progress float64 `json:"progress"`
}, error) {
	resp, err := q.hc.Get(q.base + "/api/v2/torrents/info")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list []struct {
		State    string  `json:"state"`
		Progress float64 `json:"progress"`
	}
	return list, json.NewDecoder(resp.Body).Decode(&list)
}

func (q *qbit) seeding() (int, error) {
	list, err := q.info()
	n := 0
	for _, t := range list {
		if t.Progress == 1 && (t.State == "uploading" || t.State == "stalledUP" || t.State == "queuedUP") {
			n++
		}
	}
	return n, err
}

func (q *qbit) list() error {
	_, err := q.info()
	return err
}

// restartBench measures, for one large torrent, the time from starting
// the daemon again to the torrent seeding: after a clean stop, and after
// a SIGKILL while seeding.
func restartBench(sower, clients string, size int64) {
	work, err := os.MkdirTemp("", "daemonbench-restart")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	data := filepath.Join(work, "data")
	os.MkdirAll(data, 0o755)
	p := filepath.Join(data, "big.bin")
	f, err := os.Create(p)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		log.Fatal(err)
	}
	f.Close()
	mi, err := metainfo.Build(context.Background(), p, metainfo.BuildOptions{NoDate: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	torrent, _ := mi.Encode()
	fmt.Printf("one torrent of %d bytes (%d pieces)\n\n", size, mi.Info.NumPieces())
	fmt.Println("| client | add+verify s | restart after clean stop s | restart after SIGKILL s |")
	fmt.Println("|---|---:|---:|---:|")
	for _, name := range strings.Split(clients, ",") {
		var c *transmissionLike
		switch name {
		case "sower":
			c = &transmissionLike{bin: sower, sower: true}
		case "transmission":
			c = &transmissionLike{bin: "transmission-daemon"}
		default:
			log.Printf("%s: restart benchmark supports sower and transmission only", name)
			continue
		}
		dir := filepath.Join(work, name)
		os.MkdirAll(dir, 0o755)
		rpc, peer := freePort(), freePort()
		run := func() (*exec.Cmd, time.Duration, error) {
			start := time.Now()
			cmd, err := c.start(dir, data, rpc, peer)
			if err != nil {
				return nil, 0, err
			}
			c.token = ""
			for c.ready() != nil {
				if time.Since(start) > 30*time.Second {
					return cmd, 0, errors.New("RPC not ready")
				}
				time.Sleep(10 * time.Millisecond)
			}
			return cmd, time.Since(start), nil
		}
		waitSeeding := func(start time.Time) (time.Duration, error) {
			for time.Since(start) < 10*time.Minute {
				if n, err := c.seeding(); err == nil && n == 1 {
					return time.Since(start), nil
				}
				time.Sleep(10 * time.Millisecond)
			}
			return 0, errors.New("not seeding after 10 min")
		}
		stop := func(cmd *exec.Cmd, sig os.Signal) {
			cmd.Process.Signal(sig)
			cmd.Wait()
		}
		cmd, _, err := run()
		if err != nil {
			log.Printf("%s: %v", name, err)
			continue
		}
		t0 := time.Now()
		if err := c.add(torrent, data); err != nil {
			log.Printf("%s: add: %v", name, err)
			stop(cmd, os.Kill)
			continue
		}
		verify, err := waitSeeding(t0)
		if err != nil {
			log.Printf("%s: %v", name, err)
			stop(cmd, os.Kill)
			continue
		}
		time.Sleep(3 * time.Second) // let resume data be written
		stop(cmd, syscall.SIGTERM)
		t1 := time.Now()
		cmd, _, err = run()
		if err != nil {
			log.Printf("%s: %v", name, err)
			continue
		}
		clean, err := waitSeeding(t1)
		if err != nil {
			log.Printf("%s after clean stop: %v", name, err)
		}
		time.Sleep(3 * time.Second)
		stop(cmd, os.Kill)
		t2 := time.Now()
		cmd, _, err = run()
		if err != nil {
			log.Printf("%s: %v", name, err)
			continue
		}
		killed, err := waitSeeding(t2)
		if err != nil {
			log.Printf("%s after SIGKILL: %v", name, err)
		}
		stop(cmd, syscall.SIGTERM)
		fmt.Printf("| %s | %.2f | %.2f | %.2f |\n", name, verify.Seconds(), clean.Seconds(), killed.Seconds())
	}
}
