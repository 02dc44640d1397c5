//go:build linux

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

// inLoopbackNetns runs args in a new network namespace that has only its
// own loopback, so a daemon listening on all addresses (beyond loopback,
// as far as it knows) is reachable from nowhere.
func inLoopbackNetns(ctx context.Context, t *testing.T, args string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	for _, p := range []string{"unshare", "ip", "script"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s: %v", p, err)
		}
	}
	cmd := exec.CommandContext(ctx, "unshare", "-n", "sh", "-c", "ip link set lo up && exec "+args)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal
	return cmd
}

// TestDaemonGeneratedPasswordOnTerminal: sower daemon beyond loopback
// without --password prints a generated password once, on the terminal
// that started it, as its own lines and in no log record; with no
// terminal it generates none and does not start.
func TestDaemonGeneratedPasswordOnTerminal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin := os.Getenv("SOWER_TEST_BIN")
	daemonArgs := func() string { return bin + " daemon --rpc 0.0.0.0:0 --port 0 --no-dht --data " + t.TempDir() }

	// script gives the daemon a terminal (a pty) and copies it to stdout.
	cmd := inLoopbackNetns(ctx, t, "script -qfec '"+daemonArgs()+"' /dev/null")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
		if strings.Contains(sc.Text(), "RPC and web UI on") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGTERM) // script passes it on to the daemon
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Logf("daemon under script: %v", err)
	}
	all := strings.Join(lines, "\n")
	m := regexp.MustCompile(`(?m)^  password ([0-9a-f]{24})$`).FindStringSubmatch(all)
	if m == nil {
		t.Fatalf("no generated password on the terminal:\n%s", all)
	}
	for _, l := range lines {
		if strings.Contains(l, m[1]) && l != "  password "+m[1] {
			t.Errorf("the password appears in another line: %q", l)
		}
	}

	// Without a terminal (stderr is a pipe, no controlling terminal).
	cmd = inLoopbackNetns(ctx, t, daemonArgs())
	stderr, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(stderr), "give --password") {
		t.Fatalf("daemon beyond loopback with no terminal and no password: %v\n%s", err, stderr)
	}
	if regexp.MustCompile(`[0-9a-f]{24}`).Match(stderr) {
		t.Fatalf("something like a password was written with no terminal:\n%s", stderr)
	}
}
