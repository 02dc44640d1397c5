package testpeers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Transmission torrent status codes (its RPC's "status" field).
const (
	trCheckWait = 1
	trChecking  = 2
)

// trLocalError is the "error" value for a local (disk) error; 1 and 2 are
// tracker warnings and errors, which do not stop a transfer.
const trLocalError = 3

// TransmissionSeed starts transmission-daemon with its own configuration
// and the torrent's data in dataDir, which it checks and then seeds. It
// never dials peers at 127.0.0.1 (not even ones a tracker names), so the
// other side must dial Port. Wait returns once the check is done and all
// data is verified.
func TransmissionSeed(t testing.TB, torrent, dataDir string) *Peer {
	t.Helper()
	return startTransmission(t, "seed", torrent, dataDir, 1)
}

// TransmissionGet starts transmission-daemon downloading the torrent into
// outDir. As it never dials peers at 127.0.0.1, the seeders must dial Port
// (Peer.Connect of a libtorrent peer does). Wait returns once all data is in
// and verified; it keeps seeding afterwards until Stop.
func TransmissionGet(t testing.TB, torrent, outDir string) *Peer {
	t.Helper()
	return startTransmission(t, "get", torrent, outDir, 1)
}

func startTransmission(t testing.TB, mode, torrent, dir string, encryption int) *Peer {
	t.Helper()
	prog := needProgram(t, "transmission-daemon", "transmission-daemon")
	meta, err := os.ReadFile(torrent)
	if err != nil {
		t.Fatalf("transmission: read torrent: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("transmission: %v", err)
	}
	port, rpcPort := FreePort(t), FreePort(t)
	for rpcPort == port {
		rpcPort = FreePort(t)
	}
	config := t.TempDir()
	settings := map[string]any{
		"peer-port":                   port,
		"peer-port-random-on-start":   false,
		"bind-address-ipv4":           "127.0.0.1",
		"bind-address-ipv6":           "::1",
		"dht-enabled":                 false,
		"lpd-enabled":                 false,
		"pex-enabled":                 false,
		"utp-enabled":                 false,
		"port-forwarding-enabled":     false,
		"rpc-enabled":                 true,
		"rpc-bind-address":            "127.0.0.1",
		"rpc-port":                    rpcPort,
		"rpc-authentication-required": false,
		"rpc-whitelist-enabled":       true,
		"rpc-whitelist":               "127.0.0.1",
		"rpc-host-whitelist-enabled":  false,
		"download-dir":                dir,
		"incomplete-dir-enabled":      false,
		"watch-dir-enabled":           false,
		"start-added-torrents":        true,
		"ratio-limit-enabled":         false,
		"idle-seeding-limit-enabled":  false,
		"speed-limit-up-enabled":      false,
		"speed-limit-down-enabled":    false,
		"alt-speed-enabled":           false,
		"blocklist-enabled":           false,
		"message-level":               2, // info: enough to follow a transfer
		"encryption":                  encryption,
	}
	data, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		t.Fatalf("transmission: %v", err)
	}
	if err := os.WriteFile(filepath.Join(config, "settings.json"), data, 0o644); err != nil {
		t.Fatalf("transmission: %v", err)
	}

	name := "transmission-" + mode
	proc := startProcess(t, name, exec.Command(prog, "--foreground", "--config-dir", config), nil, false)
	rpc := &trRPC{
		url:    "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/transmission/rpc",
		client: &http.Client{Timeout: rpcTimeout},
	}
	deadline := time.Now().Add(startWait)
	for {
		err := rpc.call(context.Background(), "session-get", nil, nil)
		if err == nil {
			break
		}
		if gone, exitErr := proc.exited(); gone {
			t.Fatalf("%s: %v\n%s", name, exitErr, tailFile(proc.logPath, logTailLines))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: RPC not answering within %v: %v", name, startWait, err)
		}
		time.Sleep(pollInterval)
	}

	var added struct {
		Added *struct {
			ID int `json:"id"`
		} `json:"torrent-added"`
	}
	err = rpc.call(context.Background(), "torrent-add", map[string]any{
		"metainfo":     base64.StdEncoding.EncodeToString(meta),
		"download-dir": dir,
		"paused":       false,
	}, &added)
	if err != nil {
		t.Fatalf("%s: add torrent: %v", name, err)
	}
	if added.Added == nil {
		t.Fatalf("%s: add torrent: no torrent-added in reply", name)
	}
	id := added.Added.ID

	p := &Peer{Name: name, Port: port, LogPath: proc.logPath, proc: proc}
	p.stats = func(ctx context.Context) (Stats, error) { return rpc.stats(ctx, id) }
	return p
}

// trRPC calls transmission-daemon's JSON RPC, keeping the session id it
// demands (HTTP 409 hands out a fresh one).
type trRPC struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	session string
}

// call invokes method with args and decodes the reply's "arguments" into
// out (if not nil).
func (r *trRPC) call(ctx context.Context, method string, args, out any) error {
	body, err := json.Marshal(map[string]any{"method": method, "arguments": args})
	if err != nil {
		return fmt.Errorf("transmission rpc %s: %w", method, err)
	}
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("transmission rpc %s: %w", method, err)
		}
		r.mu.Lock()
		req.Header.Set("X-Transmission-Session-Id", r.session)
		r.mu.Unlock()
		resp, err := r.client.Do(req)
		if err != nil {
			return fmt.Errorf("transmission rpc %s: %w", method, err)
		}
		reply, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("transmission rpc %s: read reply: %w", method, err)
		}
		if resp.StatusCode == http.StatusConflict {
			r.mu.Lock()
			r.session = resp.Header.Get("X-Transmission-Session-Id")
			r.mu.Unlock()
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("transmission rpc %s: HTTP %s", method, resp.Status)
		}
		var env struct {
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(reply, &env); err != nil {
			return fmt.Errorf("transmission rpc %s: reply: %w", method, err)
		}
		if env.Result != "success" {
			return fmt.Errorf("transmission rpc %s: %s", method, env.Result)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(env.Arguments, out); err != nil {
			return fmt.Errorf("transmission rpc %s: arguments: %w", method, err)
		}
		return nil
	}
	return fmt.Errorf("transmission rpc %s: session id refused twice", method)
}

// stats reads the state of torrent id.
func (r *trRPC) stats(ctx context.Context, id int) (Stats, error) {
	var got struct {
		Torrents []struct {
			Status         int    `json:"status"`
			Error          int    `json:"error"`
			ErrorString    string `json:"errorString"`
			HaveValid      int64  `json:"haveValid"`
			SizeWhenDone   int64  `json:"sizeWhenDone"`
			LeftUntilDone  int64  `json:"leftUntilDone"`
			DownloadedEver int64  `json:"downloadedEver"`
			UploadedEver   int64  `json:"uploadedEver"`
			PeersConnected int    `json:"peersConnected"`
		} `json:"torrents"`
	}
	fields := []string{"status", "error", "errorString", "haveValid", "sizeWhenDone", "leftUntilDone",
		"downloadedEver", "uploadedEver", "peersConnected"}
	if err := r.call(ctx, "torrent-get", map[string]any{"ids": []int{id}, "fields": fields}, &got); err != nil {
		return Stats{}, err
	}
	if len(got.Torrents) != 1 {
		return Stats{}, fmt.Errorf("transmission: torrent %d is gone", id)
	}
	tt := got.Torrents[0]
	st := Stats{
		State:      trStatusName(tt.Status),
		Done:       tt.HaveValid,
		Total:      tt.SizeWhenDone,
		Downloaded: tt.DownloadedEver,
		Uploaded:   tt.UploadedEver,
		Peers:      tt.PeersConnected,
	}
	if tt.Error == trLocalError {
		return st, fmt.Errorf("transmission: %s", tt.ErrorString)
	}
	st.Complete = tt.Status != trCheckWait && tt.Status != trChecking &&
		tt.LeftUntilDone == 0 && tt.SizeWhenDone > 0 && tt.HaveValid == tt.SizeWhenDone
	return st, nil
}

// trStatusName names Transmission's torrent status codes.
func trStatusName(s int) string {
	names := []string{"stopped", "check-wait", "checking", "download-wait", "downloading", "seed-wait", "seeding"}
	if s >= 0 && s < len(names) {
		return names[s]
	}
	return "status-" + strconv.Itoa(s)
}
