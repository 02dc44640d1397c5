package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDaemonProc runs `sower daemon` on free ports and returns its RPC
// address; the process is stopped with SIGTERM at cleanup.
func startDaemonProc(t *testing.T, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	args := append([]string{"daemon", "--rpc", "127.0.0.1:0", "--port", "0", "--no-dht", "--data", t.TempDir()}, extra...)
	cmd := exec.CommandContext(ctx, os.Getenv("SOWER_TEST_BIN"), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`http://([0-9.:]+)/`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("daemon exit after SIGTERM: %v", err)
		}
		cancel()
	})
	select {
	case a := <-addrc:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not report its address")
	}
	return ""
}

func TestRemoteAddLsRm(t *testing.T) {
	dir := t.TempDir()
	writeData(t, dir, map[string]string{"data.bin": strings.Repeat("sower daemon test data ", 5000)})
	if r := sower(t, dir, "create", "-q", "-o", "data.torrent", "data.bin"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	addr := startDaemonProc(t)
	r := sower(t, dir, "add", "--rpc", addr, "-o", dir, "data.torrent")
	if r.code != 0 || !regexp.MustCompile(`^1\t[0-9a-f]{40}\tdata.bin\n$`).MatchString(r.stdout) {
		t.Fatalf("add: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	hash := strings.Split(r.stdout, "\t")[1]
	if r := sower(t, dir, "add", "--rpc", addr, "data.torrent"); !strings.Contains(r.stdout, "already added") {
		t.Fatalf("second add: %q", r.stdout)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = sower(t, dir, "ls", "--rpc", addr)
		if r.code == 0 && strings.Contains(r.stdout, "seeding") && strings.Contains(r.stdout, "100.0%") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ls never showed the torrent seeding: %q %q", r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := sower(t, dir, "ls", "--rpc", addr, "--json"); !strings.Contains(r.stdout, `"info_hash": "`+hash) {
		t.Fatalf("ls --json: %q", r.stdout)
	}
	if r := sower(t, dir, "stop", "--rpc", addr, "1"); r.code != 0 {
		t.Fatalf("stop: %s", r.stderr)
	}
	if r := sower(t, dir, "start", "--rpc", addr, hash); r.code != 0 {
		t.Fatalf("start by hash: %s", r.stderr)
	}
	if r := sower(t, dir, "rm", "--rpc", addr, "9"); r.code == 0 || !strings.Contains(r.stderr, `"9"`) {
		t.Fatalf("rm of an unknown id: code %d, stderr %q", r.code, r.stderr)
	}
	if r := sower(t, dir, "rm", "--rpc", addr, "--delete-data", "1"); r.code != 0 {
		t.Fatalf("rm: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data.bin")); !os.IsNotExist(err) {
		t.Fatalf("data still there after rm --delete-data: %v", err)
	}
	if r := sower(t, dir, "ls", "--rpc", addr); strings.Contains(r.stdout, "data.bin") {
		t.Fatalf("ls after rm: %q", r.stdout)
	}
}

func TestRemoteErrors(t *testing.T) {
	dir := t.TempDir()
	if r := sower(t, dir, "ls", "--rpc", "127.0.0.1:1"); r.code != 1 || !strings.Contains(r.stderr, "is `sower daemon` running?") {
		t.Fatalf("ls with no daemon: code %d stderr %q", r.code, r.stderr)
	}
	addr := startDaemonProc(t, "--password", "pw")
	if r := sower(t, dir, "ls", "--rpc", addr); r.code != 1 || !strings.Contains(r.stderr, "authentication failed") {
		t.Fatalf("ls without password: code %d stderr %q", r.code, r.stderr)
	}
	if r := sower(t, dir, "ls", "--rpc", addr, "--password", "pw"); r.code != 0 {
		t.Fatalf("ls with password: %q", r.stderr)
	}
	writeData(t, dir, map[string]string{"junk.torrent": "not a torrent"})
	if r := sower(t, dir, "add", "--rpc", addr, "--password", "pw", "junk.torrent"); r.code != 1 || !strings.Contains(r.stderr, "invalid .torrent") {
		t.Fatalf("add junk: code %d stderr %q", r.code, r.stderr)
	}
	if r := sower(t, dir, "daemon", "--port", "70000"); r.code != 2 {
		t.Fatalf("daemon --port 70000: code %d, want 2", r.code)
	}
}

// TestDaemonRPCHost: --rpc-host adds a name the daemon answers to; other
// names are refused (DNS rebinding), addresses are served.
func TestDaemonRPCHost(t *testing.T) {
	addr := startDaemonProc(t, "--rpc-host", "my.box", "--rpc-host", "other.box")
	_, port, _ := strings.Cut(addr, ":")
	for host, want := range map[string]int{"my.box:" + port: 200, "other.box:" + port: 200, addr: 200, "evil.example:" + port: 421} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: HTTP %d, want %d", host, resp.StatusCode, want)
		}
	}
	// sower ls through a name that reaches the daemon but was not given.
	name, _ := os.Hostname()
	if ips, _ := net.LookupHost(name); name != "" && name != "localhost" && slices.Contains(ips, "127.0.0.1") {
		r := sower(t, t.TempDir(), "ls", "--rpc", name+":"+port)
		if r.code != 1 || !strings.Contains(r.stderr, "--rpc-host NAME") {
			t.Errorf("sower ls --rpc %s:%s: code %d, stderr %q; want a hint at --rpc-host", name, port, r.code, r.stderr)
		}
	} else {
		t.Logf("the host name %q does not resolve to 127.0.0.1: sower ls's answer to 421 not checked", name)
	}
}
