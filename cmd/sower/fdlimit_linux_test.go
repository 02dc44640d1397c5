package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOpenFileLimitRaised starts `sower tracker` with a soft open-file
// limit of 64 under a hard one of 4096 and checks that the running
// process may open (nearly) the hard limit: every connection a peer or
// client opens costs a descriptor, and 64 run out at once. Go's runtime
// raises the soft limit at start (to hard-1, so that it can tell whether
// someone changed it since); sower relies on that rather than repeating
// it, and this test guards it.
func TestOpenFileLimitRaised(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prlimit, "--nofile=64:4096", "--", os.Getenv("SOWER_TEST_BIN"),
		"tracker", "--http", "127.0.0.1:0", "--udp", "", "--data", "")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "HTTP tracker:") {
	}
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Max open files\s+(\d+)\s+(\d+)`).FindSubmatch(limits)
	if m == nil {
		t.Fatalf("no open-file limit in\n%s", limits)
	}
	soft, _ := strconv.Atoi(string(m[1]))
	hard, _ := strconv.Atoi(string(m[2]))
	if hard != 4096 || soft < hard-1 {
		t.Errorf("running sower: open-file limit soft %d hard %d, want the soft one raised to the hard 4096", soft, hard)
	}
}
