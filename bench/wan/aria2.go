//go:build linux

package main

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
	"strconv"
	"time"
)

// aria2GID is the id of each aria2c's one download.
const aria2GID = "5357524d00000001"

// aria2RPCPort is aria2c's JSON-RPC port on the host's loopback.
const aria2RPCPort = 6800

// aria2Node is aria2c driven through its JSON-RPC. It starts paused, so
// start and resume are an unpause and pause is a forced pause (which
// drops its peers).
type aria2Node struct {
	p     *proc
	token string
	http  *http.Client
	url   string
}

func launchAria2(ctx context.Context, j job) (node, error) {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	args := []string{
		"--no-conf=true", "--dir=" + j.dir,
		"--listen-port=" + strconv.Itoa(peerPort), "--disable-ipv6=true",
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
		"--file-allocation=none", "--auto-file-renaming=false", "--allow-overwrite=true",
		"--enable-rpc=true", "--rpc-listen-all=false", "--rpc-listen-port=" + strconv.Itoa(aria2RPCPort),
		"--rpc-secret=" + hex.EncodeToString(secret), "--gid=" + aria2GID,
		"--stop-with-process=" + strconv.Itoa(os.Getpid()),
		"--show-console-readout=false", "--summary-interval=0", "--enable-color=false",
		"--console-log-level=notice", "--seed-ratio=0.0", "--pause=true",
	}
	if j.seed {
		args = append(args, "--check-integrity=true")
	}
	p, err := startProc(j.host, j.dir, "aria2", nil, "aria2c", append(args, j.torrent)...)
	if err != nil {
		return nil, err
	}
	a := &aria2Node{p: p, token: "token:" + hex.EncodeToString(secret), http: hostHTTP(j.host),
		url: "http://127.0.0.1:" + strconv.Itoa(aria2RPCPort) + "/jsonrpc"}
	err = waitUntil(ctx, p.name+" RPC", startWait, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if err := p.alive(); err != nil {
			return false, err
		}
		var v any
		if err := a.call(ctx, "aria2.getVersion", &v); err != nil {
			return false, retryable{err}
		}
		return true, nil
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	return a, nil
}

func (a *aria2Node) call(ctx context.Context, method string, out any, params ...any) error {
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
	resp, err := a.http.Do(req)
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

func (a *aria2Node) start(ctx context.Context) error { return a.resume(ctx) }
func (a *aria2Node) resume(ctx context.Context) error {
	var g string
	return a.call(ctx, "aria2.unpause", &g, aria2GID)
}
func (a *aria2Node) pause(ctx context.Context) error {
	var g string
	return a.call(ctx, "aria2.forcePause", &g, aria2GID)
}

func (a *aria2Node) status(ctx context.Context) (status, error) {
	var s struct {
		Status          string `json:"status"`
		TotalLength     string `json:"totalLength"`
		CompletedLength string `json:"completedLength"`
		UploadLength    string `json:"uploadLength"`
		VerifiedLength  string `json:"verifiedLength"`
		VerifyPending   string `json:"verifyIntegrityPending"`
		ErrorMessage    string `json:"errorMessage"`
	}
	if err := a.call(ctx, "aria2.tellStatus", &s, aria2GID); err != nil {
		return status{}, err
	}
	if s.Status == "error" {
		return status{}, fmt.Errorf("%s: download failed: %s", a.p.name, s.ErrorMessage)
	}
	total, _ := strconv.ParseInt(s.TotalLength, 10, 64)
	done, _ := strconv.ParseInt(s.CompletedLength, 10, 64)
	up, _ := strconv.ParseInt(s.UploadLength, 10, 64)
	st := status{Up: up, Down: -1}
	if total > 0 {
		st.Have = float64(done) / float64(total)
	}
	// While it checks, aria2 reports a verifiedLength (or a pending
	// check); completedLength counts only verified pieces otherwise.
	st.Complete = total > 0 && done == total && s.VerifiedLength == "" && s.VerifyPending == ""
	return st, nil
}

func (a *aria2Node) cpu() time.Duration { return a.p.cpu() }
func (a *aria2Node) alive() error       { return a.p.alive() }
func (a *aria2Node) stop()              { a.p.stop() }
