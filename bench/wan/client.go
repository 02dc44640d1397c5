//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sowerbt/sower/internal/wanlab"
)

// Clients the lab can run, in the order a full run takes them.
var clientNames = []string{"sower", "libtorrent", "aria2", "transmission"}

// status is what the benchmark reads from a running client.
type status struct {
	Have     float64 // fraction of the torrent verified
	Complete bool    // every piece verified
	Up       int64   // payload uploaded
	Down     int64   // payload downloaded, duplicates included; -1 if the client does not tell
}

// node is one client program in one host with one torrent.
type node interface {
	// start begins downloading (or, for a seed, seeding once checked).
	start(ctx context.Context) error
	// pause leaves the swarm (connections closed); resume comes back.
	pause(ctx context.Context) error
	resume(ctx context.Context) error
	status(ctx context.Context) (status, error)
	// cpu is the program's CPU time so far.
	cpu() time.Duration
	// alive returns an error once the program has exited.
	alive() error
	stop()
}

// job is what a node is asked to do.
type job struct {
	host    *wanlab.Host
	dir     string // its working folder, holding the data (the seed's is complete)
	torrent string // .torrent file
	seed    bool
	tools   *tools
}

// tools are the programs and files the clients need, found once.
type tools struct {
	sower    string // the sower binary, built from this module
	ltScript string // the libtorrent driver script
}

// launch starts client name for j and waits until it can take commands.
func launch(ctx context.Context, name string, j job) (node, error) {
	switch name {
	case "sower":
		return launchSower(ctx, j)
	case "transmission":
		return launchTransmission(ctx, j)
	case "aria2":
		return launchAria2(ctx, j)
	case "libtorrent":
		return launchLibtorrent(ctx, j)
	}
	return nil, fmt.Errorf("unknown client %q (want one of %v)", name, clientNames)
}

func knownClient(name string) bool { return slices.Contains(clientNames, name) }

// hostHTTP is an HTTP client whose connections are made inside host h,
// to reach a client's RPC on the host's own loopback.
func hostHTTP(h *wanlab.Host) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:       h.Dial,
			DisableKeepAlives: false,
			MaxIdleConns:      2,
		},
	}
}
