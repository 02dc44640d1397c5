package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestDHTCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A standalone node is the bootstrap node of a private network.
	node := exec.CommandContext(ctx, os.Getenv("SOWER_TEST_BIN"), "dht", "--listen", "127.0.0.1:0", "--rate-limit", "0")
	out, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		node.Process.Signal(os.Interrupt)
		node.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the node's address: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "listening" || len(f[4]) != 40 {
		t.Fatalf("unexpected first line %q", line)
	}
	addr := f[2]
	dir := t.TempDir()
	const ih = "0123456789abcdef0123456789abcdef01234567"

	r := sower(t, dir, "dht", "get-peers", "--listen", "127.0.0.1:0", "--bootstrap", addr, "--timeout", "20s", ih)
	if r.code != 1 || !strings.Contains(r.stderr, "no peers found") {
		t.Fatalf("get-peers before any announce: code %d, stderr %q", r.code, r.stderr)
	}
	r = sower(t, dir, "dht", "announce", "--listen", "127.0.0.1:0", "--bootstrap", addr, "--port", "7777", ih)
	if r.code != 0 {
		t.Fatalf("announce: code %d, stderr %q", r.code, r.stderr)
	}
	r = sower(t, dir, "dht", "get-peers", "--listen", "127.0.0.1:0", "--bootstrap", addr, ih)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "127.0.0.1:7777" {
		t.Fatalf("get-peers: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = sower(t, dir, "dht", "get-peers", "--bootstrap", addr, "xyz")
	if r.code != 2 || !strings.Contains(r.stderr, "want 40 hex digits") {
		t.Fatalf("bad info-hash: code %d, stderr %q", r.code, r.stderr)
	}
	r = sower(t, dir, "dht", "get-peers", "--listen", "127.0.0.1:0", "--bootstrap", "127.0.0.1:1", "--timeout", "10s", ih)
	if r.code != 1 || !strings.Contains(r.stderr, "joining the DHT") {
		t.Fatalf("unreachable bootstrap: code %d, stderr %q", r.code, r.stderr)
	}
}
