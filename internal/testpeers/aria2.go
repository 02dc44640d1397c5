package testpeers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// aria2GID is the download id given to aria2c's one torrent, so its RPC can
// be asked about it without listing downloads first.
const aria2GID = "5047e57e00000001"

// rpcTimeout bounds one RPC call to a program.
const rpcTimeout = 10 * time.Second

// Aria2Seed starts aria2c checking the torrent's data in dataDir (-V) and
// then seeding it for ever (--seed-ratio=0.0). Peers given (host:port) are
// dialled as for Aria2Get. Wait returns once the check is done and it is
// seeding.
func Aria2Seed(t testing.TB, torrent, dataDir string, peers ...string) *Peer {
	t.Helper()
	return startAria2(t, "seed", torrent, dataDir, peers, "--seed-ratio=0.0")
}

// Aria2Get starts aria2c downloading the torrent into outDir (expected to be
// empty), from peers it gets from the torrent's trackers and from the given
// peers (host:port). aria2c has no option to dial a peer, so the given peers
// reach it through a small extra HTTP tracker in the test process that
// answers every announce with them (--bt-tracker). It stops sharing once
// complete (--seed-time=0) but keeps running, idle, until Stop so that its
// statistics stay readable. Wait returns once every piece is in and
// hash-checked.
func Aria2Get(t testing.TB, torrent, outDir string, peers ...string) *Peer {
	t.Helper()
	return startAria2(t, "get", torrent, outDir, peers, "--seed-time=0")
}

func startAria2(t testing.TB, mode, torrent, dir string, peers []string, modeArg string, extra ...string) *Peer {
	t.Helper()
	prog := needProgram(t, "aria2c", "aria2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("aria2c: %v", err)
	}
	port, rpcPort := FreePort(t), FreePort(t)
	for rpcPort == port {
		rpcPort = FreePort(t)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	rpc := &aria2RPC{
		url:    "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/jsonrpc",
		token:  "token:" + hex.EncodeToString(secret),
		client: &http.Client{Timeout: rpcTimeout},
	}
	args := []string{
		"--no-conf=true",
		"--dir=" + dir,
		"--listen-port=" + strconv.Itoa(port),
		"--interface=127.0.0.1",
		"--disable-ipv6=true",
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--check-integrity=true",
		"--file-allocation=none",
		"--auto-file-renaming=false",
		"--enable-rpc=true", "--rpc-listen-all=false",
		"--rpc-listen-port=" + strconv.Itoa(rpcPort),
		"--rpc-secret=" + hex.EncodeToString(secret),
		"--gid=" + aria2GID,
		"--stop-with-process=" + strconv.Itoa(os.Getpid()),
		"--show-console-readout=false", "--summary-interval=0", "--enable-color=false",
		"--console-log-level=notice",
		modeArg,
	}
	args = append(args, extra...)
	if len(peers) > 0 {
		args = append(args, "--bt-tracker="+staticTracker(t, peers))
	}
	args = append(args, torrent)

	name := "aria2c-" + mode
	proc := startProcess(t, name, exec.Command(prog, args...), nil, false)
	p := &Peer{Name: name, Port: port, LogPath: proc.logPath, proc: proc}
	p.stats = func(ctx context.Context) (Stats, error) { return rpc.stats(ctx, mode) }

	deadline := time.Now().Add(startWait)
	for {
		_, err := p.Stats(context.Background())
		if err == nil {
			break
		}
		if gone, _ := proc.exited(); gone || time.Now().After(deadline) {
			t.Fatalf("%s did not start: %v\n%s", name, err, tailFile(proc.logPath, logTailLines))
		}
		time.Sleep(pollInterval)
	}
	return p
}

// aria2RPC calls aria2c's JSON-RPC interface.
type aria2RPC struct {
	url    string
	token  string
	client *http.Client
}

// call invokes method with the secret token and params, decoding the
// result into out.
func (r *aria2RPC) call(ctx context.Context, method string, out any, params ...any) error {
	body, err := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": "1", "method": method,
		"params": append([]any{r.token}, params...),
	})
	if err != nil {
		return fmt.Errorf("aria2 rpc %s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("aria2 rpc %s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("aria2 rpc %s: %w", method, err)
	}
	defer resp.Body.Close()
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&reply); err != nil {
		return fmt.Errorf("aria2 rpc %s: HTTP %s: %w", method, resp.Status, err)
	}
	if reply.Error != nil {
		return fmt.Errorf("aria2 rpc %s: error %d: %s", method, reply.Error.Code, reply.Error.Message)
	}
	if err := json.Unmarshal(reply.Result, out); err != nil {
		return fmt.Errorf("aria2 rpc %s: result: %w", method, err)
	}
	return nil
}

// stats reads the torrent's state. aria2c has no counter of downloaded
// payload, so for a leecher (which starts empty) Downloaded is the verified
// data it holds, and for a seeder it is 0.
func (r *aria2RPC) stats(ctx context.Context, mode string) (Stats, error) {
	var s struct {
		Status          string `json:"status"`
		TotalLength     string `json:"totalLength"`
		CompletedLength string `json:"completedLength"`
		UploadLength    string `json:"uploadLength"`
		Connections     string `json:"connections"`
		Seeder          string `json:"seeder"`
		VerifiedLength  string `json:"verifiedLength"`
		VerifyPending   string `json:"verifyIntegrityPending"`
		ErrorCode       string `json:"errorCode"`
		ErrorMessage    string `json:"errorMessage"`
	}
	if err := r.call(ctx, "aria2.tellStatus", &s, aria2GID); err != nil {
		return Stats{}, err
	}
	num := func(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }
	st := Stats{
		State:    s.Status,
		Done:     num(s.CompletedLength),
		Total:    num(s.TotalLength),
		Uploaded: num(s.UploadLength),
		Peers:    int(num(s.Connections)),
	}
	checking := s.VerifiedLength != "" || s.VerifyPending != ""
	if checking {
		st.State = "checking"
	}
	if mode == "get" {
		st.Downloaded = st.Done
	}
	switch s.Status {
	case "error", "removed":
		return st, fmt.Errorf("aria2c download %s: error %s: %s", s.Status, s.ErrorCode, s.ErrorMessage)
	case "complete":
		st.Complete = true
	case "active":
		st.Complete = s.Seeder == "true" && !checking && st.Total > 0 && st.Done == st.Total
	}
	return st, nil
}
