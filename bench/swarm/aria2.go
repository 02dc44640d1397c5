package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// aria2GID is the download id of each aria2c's one torrent.
const aria2GID = "5357524d00000001"

// aria2Peer is one running aria2c, driven through its JSON-RPC.
type aria2Peer struct {
	p      *proc
	port   int
	url    string
	token  string
	client *http.Client
}

// aria2Status is the part of aria2.tellStatus the benchmark reads.
type aria2Status struct {
	Status          string `json:"status"`
	TotalLength     string `json:"totalLength"`
	CompletedLength string `json:"completedLength"`
	UploadLength    string `json:"uploadLength"`
	Seeder          string `json:"seeder"`
	VerifiedLength  string `json:"verifiedLength"`
	VerifyPending   string `json:"verifyIntegrityPending"`
	ErrorMessage    string `json:"errorMessage"`
}

// complete reports whether every piece is in and checked.
func (s aria2Status) complete() bool {
	return s.Status != "error" && s.VerifiedLength == "" && s.VerifyPending == "" &&
		s.TotalLength != "0" && s.TotalLength != "" && s.CompletedLength == s.TotalLength
}

// call invokes an RPC method with the secret token.
func (a *aria2Peer) call(ctx context.Context, method string, out any, params ...any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "1", "method": method,
		"params": append([]any{a.token}, params...)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s rpc %s: %w", a.p.name, method, err)
	}
	defer resp.Body.Close()
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&reply); err != nil {
		return fmt.Errorf("%s rpc %s: %w", a.p.name, method, err)
	}
	if reply.Error != nil {
		return fmt.Errorf("%s rpc %s: %s", a.p.name, method, reply.Error.Message)
	}
	return json.Unmarshal(reply.Result, out)
}

func (a *aria2Peer) status(ctx context.Context) (aria2Status, error) {
	var s aria2Status
	err := a.call(ctx, "aria2.tellStatus", &s, aria2GID)
	if err == nil && s.Status == "error" {
		err = fmt.Errorf("%s: download failed: %s", a.p.name, s.ErrorMessage)
	}
	return s, err
}

// freePort returns a TCP port free on 127.0.0.1 right now, for programs
// that cannot report the port they bound.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// runAria2 runs the scenario with an aria2c seed and leechers. aria2c
// cannot be told to dial a peer, so every one gets the whole swarm from a
// tracker in this process; leechers start paused and are released by RPC.
func runAria2(ctx context.Context, sc *Scenario, mode Mode) (Result, error) {
	res := Result{Impl: "aria2", Mode: mode, Leechers: sc.Leechers, Size: sc.Size, Ideal: sc.Ideal(), Wasted: -1}
	if mode != ModeDefault {
		return res, fmt.Errorf("aria2: mode %s not supported", mode)
	}
	prog, err := exec.LookPath("aria2c")
	if err != nil {
		return res, fmt.Errorf("aria2: %w (Debian package aria2)", err)
	}
	n := sc.Leechers + 1
	ports := make([]int, 0, 2*n)
	seen := map[int]bool{}
	for len(ports) < 2*n {
		p, err := freePort()
		if err != nil {
			return res, fmt.Errorf("aria2: %w", err)
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	var swarm []netip.AddrPort
	for i := range n {
		swarm = append(swarm, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[i])))
	}
	reply, err := staticReply(swarm)
	if err != nil {
		return res, err
	}
	tctx, stopTracker := context.WithCancel(ctx)
	announce, trackerDone, err := serveTracker(tctx, reply)
	if err != nil {
		stopTracker()
		return res, err
	}
	defer trackerDone()
	defer stopTracker()

	var all procs
	defer func() { all.stopAll() }()
	start := func(name, dir string, port, rpcPort int, extra ...string) (*aria2Peer, error) {
		secret := make([]byte, 16)
		_, _ = rand.Read(secret)
		args := append([]string{
			"--no-conf=true", "--dir=" + dir,
			"--listen-port=" + strconv.Itoa(port), "--interface=127.0.0.1", "--disable-ipv6=true",
			"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
			"--file-allocation=none", "--auto-file-renaming=false", "--allow-overwrite=true",
			"--enable-rpc=true", "--rpc-listen-all=false", "--rpc-listen-port=" + strconv.Itoa(rpcPort),
			"--rpc-secret=" + hex.EncodeToString(secret), "--gid=" + aria2GID,
			"--stop-with-process=" + strconv.Itoa(os.Getpid()),
			"--show-console-readout=false", "--summary-interval=0", "--enable-color=false",
			"--console-log-level=notice",
			"--seed-ratio=0.0", // seed until stopped
			"--bt-tracker=" + announce,
		}, extra...)
		args = append(args, sc.Torrent)
		p, err := startProc(sc.Work, name, exec.Command(prog, args...), nil)
		if err != nil {
			return nil, err
		}
		all = append(all, p)
		return &aria2Peer{p: p, port: port, url: "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/jsonrpc",
			token: "token:" + hex.EncodeToString(secret), client: &http.Client{Timeout: 10 * time.Second}}, nil
	}
	seed, err := start("seed", filepath.Dir(sc.Data), ports[0], ports[n],
		"--check-integrity=true", "--max-upload-limit="+strconv.FormatInt(sc.Rate, 10))
	if err != nil {
		return res, err
	}
	leechers := make([]*aria2Peer, sc.Leechers)
	for i := range leechers {
		dir := workFile(sc, fmt.Sprintf("leecher%d", i+1))
		if leechers[i], err = start(fmt.Sprintf("leecher%d", i+1), dir, ports[i+1], ports[n+i+1], "--pause=true"); err != nil {
			return res, err
		}
	}
	// Start-up: the seed has checked its data; every leecher answers RPC.
	wait := func(a *aria2Peer, what string, d time.Duration, cond func(aria2Status) bool) (time.Time, error) {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		for {
			s, err := a.status(wctx)
			if err == nil && cond(s) {
				return time.Now(), nil
			}
			if aerr := a.p.checkAlive(); aerr != nil {
				return time.Time{}, aerr
			}
			select {
			case <-wctx.Done():
				return time.Time{}, fmt.Errorf("%s: waiting for %s: %w (last error %v); see %s", a.p.name, what, wctx.Err(), err, a.p.logPath)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if _, err := wait(seed, "its check", startWait, aria2Status.complete); err != nil {
		return res, err
	}
	for _, l := range leechers {
		if _, err := wait(l, "start-up", startWait, func(aria2Status) bool { return true }); err != nil {
			return res, err
		}
	}

	// Release every leecher at once.
	began := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(leechers))
	for i, l := range leechers {
		wg.Go(func() {
			var gid string
			errs[i] = l.call(ctx, "aria2.unpause", &gid, aria2GID)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	took := make([]time.Duration, len(leechers))
	for i, l := range leechers {
		wg.Go(func() {
			var at time.Time
			at, errs[i] = wait(l, "completion", max(time.Until(began.Add(sc.Timeout)), time.Second), aria2Status.complete)
			took[i] = at.Sub(began)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	res.summarise(took)
	for i, a := range append([]*aria2Peer{seed}, leechers...) {
		s, err := a.status(ctx)
		if err != nil {
			return res, err
		}
		up, _ := strconv.ParseInt(s.UploadLength, 10, 64)
		if i == 0 {
			res.SeedUp = up
		}
		res.TotalUp += up
	}
	return res, nil
}
