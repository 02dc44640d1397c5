//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// rpcPort is where Sower's daemon and transmission-daemon answer their
// (Transmission) RPC, on the host's loopback; every host has its own.
const rpcPort = 9091

// peerPort is every client's BitTorrent port (each host has its own
// network, so they can all use the same one).
const peerPort = 6881

// startWait bounds a client's start-up and a seed's check of its data.
const startWait = 2 * time.Minute

// rpcNode is a client driven through the Transmission RPC: Sower's daemon
// or transmission-daemon.
type rpcNode struct {
	p       *proc
	j       job
	url     string
	http    *http.Client
	mu      sync.Mutex
	session string
	id      int
}

// launchSower runs `sower daemon` in the host.
func launchSower(ctx context.Context, j job) (node, error) {
	state := filepath.Join(j.dir, "sower-state")
	p, err := startProc(j.host, j.dir, "sower", nil, j.tools.sower, "daemon",
		"--rpc", "127.0.0.1:"+strconv.Itoa(rpcPort), "--port", strconv.Itoa(peerPort),
		"--data", state, "--download-dir", j.dir)
	if err != nil {
		return nil, err
	}
	return newRPCNode(ctx, p, j)
}

// launchTransmission runs transmission-daemon in the host, with DHT and
// local peer discovery off (the lab has neither) and no ratio limit.
func launchTransmission(ctx context.Context, j job) (node, error) {
	config := filepath.Join(j.dir, "transmission-config")
	if err := os.MkdirAll(config, 0o755); err != nil {
		return nil, err
	}
	settings := map[string]any{
		"peer-port":                   peerPort,
		"peer-port-random-on-start":   false,
		"bind-address-ipv4":           "0.0.0.0",
		"dht-enabled":                 false,
		"lpd-enabled":                 false,
		"port-forwarding-enabled":     false,
		"rpc-enabled":                 true,
		"rpc-bind-address":            "127.0.0.1",
		"rpc-port":                    rpcPort,
		"rpc-authentication-required": false,
		"rpc-whitelist-enabled":       true,
		"rpc-whitelist":               "127.0.0.1",
		"rpc-host-whitelist-enabled":  false,
		"download-dir":                j.dir,
		"incomplete-dir-enabled":      false,
		"rename-partial-files":        false,
		"watch-dir-enabled":           false,
		"start-added-torrents":        true,
		"ratio-limit-enabled":         false,
		"idle-seeding-limit-enabled":  false,
		"speed-limit-up-enabled":      false,
		"speed-limit-down-enabled":    false,
		"alt-speed-enabled":           false,
		"blocklist-enabled":           false,
		"message-level":               2,
	}
	data, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(config, "settings.json"), data, 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(j.host, j.dir, "transmission", nil, "transmission-daemon", "--foreground", "--config-dir", config)
	if err != nil {
		return nil, err
	}
	return newRPCNode(ctx, p, j)
}

// newRPCNode waits for the RPC to answer.
func newRPCNode(ctx context.Context, p *proc, j job) (*rpcNode, error) {
	n := &rpcNode{p: p, j: j, url: "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/transmission/rpc", http: hostHTTP(j.host)}
	err := waitUntil(ctx, p.name+" RPC", startWait, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if err := p.alive(); err != nil {
			return false, err
		}
		if err := n.call(ctx, "session-get", nil, nil); err != nil {
			return false, retryable{err}
		}
		return true, nil
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	return n, nil
}

// call invokes method and decodes the reply's arguments into out.
func (n *rpcNode) call(ctx context.Context, method string, args, out any) error {
	body, err := json.Marshal(map[string]any{"method": method, "arguments": args})
	if err != nil {
		return err
	}
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		n.mu.Lock()
		req.Header.Set("X-Transmission-Session-Id", n.session)
		n.mu.Unlock()
		resp, err := n.http.Do(req)
		if err != nil {
			return fmt.Errorf("%s rpc %s: %w", n.p.name, method, err)
		}
		reply, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s rpc %s: %w", n.p.name, method, err)
		}
		if resp.StatusCode == http.StatusConflict {
			n.mu.Lock()
			n.session = resp.Header.Get("X-Transmission-Session-Id")
			n.mu.Unlock()
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s rpc %s: HTTP %s", n.p.name, method, resp.Status)
		}
		var env struct {
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(reply, &env); err != nil {
			return fmt.Errorf("%s rpc %s: %w", n.p.name, method, err)
		}
		if env.Result != "success" {
			return fmt.Errorf("%s rpc %s: %s", n.p.name, method, env.Result)
		}
		if out != nil {
			return json.Unmarshal(env.Arguments, out)
		}
		return nil
	}
	return fmt.Errorf("%s rpc %s: session id refused twice", n.p.name, method)
}

func (n *rpcNode) start(ctx context.Context) error {
	meta, err := os.ReadFile(n.j.torrent)
	if err != nil {
		return err
	}
	var added struct {
		Added *struct {
			ID int `json:"id"`
		} `json:"torrent-added"`
		Dup *struct {
			ID int `json:"id"`
		} `json:"torrent-duplicate"`
	}
	err = n.call(ctx, "torrent-add", map[string]any{
		"metainfo": base64.StdEncoding.EncodeToString(meta), "download-dir": n.j.dir, "paused": false}, &added)
	if err != nil {
		return err
	}
	switch {
	case added.Added != nil:
		n.id = added.Added.ID
	case added.Dup != nil:
		n.id = added.Dup.ID
	default:
		return fmt.Errorf("%s: torrent-add answered no torrent", n.p.name)
	}
	return nil
}

func (n *rpcNode) pause(ctx context.Context) error {
	return n.call(ctx, "torrent-stop", map[string]any{"ids": []int{n.id}}, nil)
}

func (n *rpcNode) resume(ctx context.Context) error {
	return n.call(ctx, "torrent-start", map[string]any{"ids": []int{n.id}}, nil)
}

// Transmission's status codes that mean the data is being checked.
const (
	trCheckWait = 1
	trChecking  = 2
)

func (n *rpcNode) status(ctx context.Context) (status, error) {
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
		} `json:"torrents"`
	}
	err := n.call(ctx, "torrent-get", map[string]any{"ids": []int{n.id}, "fields": []string{"status", "error",
		"errorString", "haveValid", "sizeWhenDone", "leftUntilDone", "downloadedEver", "uploadedEver"}}, &got)
	if err != nil {
		return status{}, err
	}
	if len(got.Torrents) != 1 {
		return status{}, errors.New(n.p.name + ": the torrent is gone")
	}
	t := got.Torrents[0]
	// Error 3 is a local error (disk); 1 and 2 are tracker warnings.
	if t.Error == 3 {
		return status{}, fmt.Errorf("%s: %s", n.p.name, t.ErrorString)
	}
	st := status{Up: t.UploadedEver, Down: t.DownloadedEver}
	if t.SizeWhenDone > 0 {
		st.Have = float64(t.HaveValid) / float64(t.SizeWhenDone)
	}
	st.Complete = t.Status != trCheckWait && t.Status != trChecking && t.SizeWhenDone > 0 &&
		t.LeftUntilDone == 0 && t.HaveValid == t.SizeWhenDone
	return st, nil
}

func (n *rpcNode) cpu() time.Duration { return n.p.cpu() }
func (n *rpcNode) alive() error       { return n.p.alive() }
func (n *rpcNode) stop()              { n.p.stop() }
