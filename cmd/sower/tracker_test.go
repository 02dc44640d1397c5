package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTrackerAndScrape runs `sower tracker`, announces nothing, scrapes it
// over HTTP and UDP, stops it with SIGINT and manages passkeys offline.
func TestTrackerAndScrape(t *testing.T) {
	dir := t.TempDir()
	data := dir + "/data"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("SOWER_TEST_BIN"), "tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--data", data, "--private")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	sc := bufio.NewScanner(stdout)
	re := regexp.MustCompile(`^(HTTP|UDP) tracker:\s+(\S+)`)
	for len(urls) < 2 && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			urls[m[1]] = m[2]
		}
	}
	go func() { // drain the rest so the tracker never blocks on stdout
		for sc.Scan() {
		}
	}()
	if len(urls) < 2 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("tracker printed no URLs: %v", urls)
	}
	hash := strings.Repeat("ab", 20)
	httpURL := strings.Replace(urls["HTTP"], "<passkey>", "nokey", 1)
	r := sower(t, dir, "scrape", httpURL, hash)
	if r.code != 1 || !strings.Contains(r.stderr, "unknown passkey") {
		t.Errorf("scrape with unknown passkey: %+v", r)
	}
	// A private tracker refuses UDP scrapes: they cannot carry a passkey.
	r = sower(t, dir, "scrape", urls["UDP"], hash)
	if r.code != 1 || !strings.Contains(r.stderr, "scrape over HTTP") {
		t.Errorf("udp scrape of a private tracker: %+v", r)
	}
	r = sower(t, dir, "scrape", urls["UDP"], "xyz")
	if r.code != 2 || !strings.Contains(r.stderr, "info-hash 1 \"xyz\"") {
		t.Errorf("bad hash: %+v", r)
	}
	// The database is held by the running tracker.
	if r = sower(t, dir, "tracker", "passkey", "add", "alice", "--data", data); r.code != 1 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("passkey add while running: %+v", r)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tracker exit after SIGINT: %v", err)
	}
	r = sower(t, dir, "tracker", "passkey", "add", "alice", "--data", data)
	if r.code != 0 || !regexp.MustCompile(`^added alice: passkey [0-9a-f]{32} `).MatchString(r.stdout) {
		t.Fatalf("passkey add: %+v", r)
	}
	if r = sower(t, dir, "tracker", "passkey", "revoke", "alice", "--data", data); r.code != 0 {
		t.Errorf("revoke: %+v", r)
	}
	if r = sower(t, dir, "tracker", "passkey", "list", "--data", data); !strings.Contains(r.stdout, "alice  (revoked)") {
		t.Errorf("list: %+v", r)
	}
	if r = sower(t, dir, "tracker", "--gc-percent", "0", "--data", ""); r.code != 2 || !strings.Contains(r.stderr, "--gc-percent 0") {
		t.Errorf("gc-percent 0: %+v", r)
	}
	if r = sower(t, dir, "tracker", "--http", "", "--udp", ""); r.code != 2 {
		t.Errorf("nothing to serve: %+v", r)
	}
}
