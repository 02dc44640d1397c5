//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/wanlab"
)

func TestBuildPlan(t *testing.T) {
	a, err := buildPlan("nat", 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := buildPlan("nat", 7, 1)
	c, _ := buildPlan("nat", 8, 1)
	if len(a.hosts) != 25 || a.size != 128<<20 {
		t.Fatalf("nat plan: %d hosts, %d bytes", len(a.hosts), a.size)
	}
	var late, leave, nat, cone int
	for _, h := range a.leechers() {
		if h.joinAt > 0 {
			late++
		}
		if h.leaves {
			leave++
			if h.joinAt > 0 {
				t.Errorf("%s both joins late and leaves", h.name)
			}
		}
		if h.nat != noNAT {
			nat++
		}
		if h.nat == fullCone {
			cone++
		}
		if h.link.up < 2*mbit || h.link.up > 10*mbit || h.link.down < 20*mbit || h.link.down > 100*mbit ||
			h.link.rtt < 20*time.Millisecond || h.link.rtt > 200*time.Millisecond || h.link.loss > 0.01 {
			t.Errorf("%s out of the scenario's ranges: %+v", h.name, h.link)
		}
	}
	if late != 8 || leave != 4 || nat != 12 || cone != 6 {
		t.Errorf("late %d, leaving %d, NATed %d (full-cone %d); want 8, 4, 12 (6)", late, leave, nat, cone)
	}
	if !equalPlans(a, b) {
		t.Error("the same seed drew different plans")
	}
	if equalPlans(a, c) {
		t.Error("different seeds drew the same plan")
	}
	pair, _ := buildPlan("pair", 1, 0.5)
	// 128 MiB at 100 Mbit/s.
	if want := time.Duration(float64(128<<20) * 8 / 100e6 * float64(time.Second)); pair.ideal() != want {
		t.Errorf("pair ideal %v, want %v", pair.ideal(), want)
	}
	home, _ := buildPlan("home", 1, 1)
	if home.ideal() < time.Duration(float64(128<<20)*8/20e6*float64(time.Second)) {
		t.Errorf("home ideal %v is below size / seed rate", home.ideal())
	}
	for _, bad := range []struct {
		name  string
		scale float64
	}{{"lan", 1}, {"pair", 0}, {"home", 100}} {
		if _, err := buildPlan(bad.name, 1, bad.scale); err == nil {
			t.Errorf("buildPlan(%q, %v) succeeded", bad.name, bad.scale)
		}
	}
}

func equalPlans(a, b *plan) bool {
	if len(a.hosts) != len(b.hosts) {
		return false
	}
	for i := range a.hosts {
		if a.hosts[i] != b.hosts[i] {
			return false
		}
	}
	return true
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags("foreign-seed", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.clients, ",") != "aria2,libtorrent,transmission" {
		t.Errorf("foreign-seed clients %v", o.clients)
	}
	o, err = parseFlags("pair", []string{"-client", "sower,aria2", "-scale", "0.5", "-seed", "3"}, io.Discard)
	if err != nil || len(o.clients) != 2 || o.scale != 0.5 || o.seed != 3 {
		t.Errorf("parsed %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-client", "qbittorrent"}, {"-scale", "-1"}, {"extra"}} {
		if _, err := parseFlags("pair", bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
	if _, err := parseFlags("moon", nil, io.Discard); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestParseLtStats(t *testing.T) {
	n, st, ok := parseLtStats("7 have=0.500000 complete=0 up=10 down=20")
	if !ok || n != 7 || st.Have != 0.5 || st.Complete || st.Up != 10 || st.Down != 20 {
		t.Errorf("got %d %+v %v", n, st, ok)
	}
	for _, bad := range []string{"", "x have=1 complete=1 up=1 down=1", "1 have=x complete=1 up=1 down=1", "1 have=1 complete=1 up=1", "1 what=1 complete=1 up=1 down=1"} {
		if _, _, ok := parseLtStats(bad); ok {
			t.Errorf("parseLtStats(%q) accepted", bad)
		}
	}
}

// resultRE matches a RESULT line and captures its ok field.
var resultRE = regexp.MustCompile(`(?m)^RESULT scenario=(\S+) client=(\S+) seed=\S+ leechers=\S+ ideal_x=(?:[0-9.]+|na) seed_copies=[0-9.]+ link_util=[0-9.]+ wasted=(?:[0-9.-]+|na) cpu_s=[0-9.]+ lab_cpu_ms_per_mbit=[0-9.]+ lab_late_ms=[0-9.]+(?: nat_done=\d+/\d+ from_nated=[0-9.]+)? ok=([01])$`)

// TestScenariosSower runs scaled-down pair and home swarms of Sower
// clients through the lab and checks every leecher completed with
// byte-identical data (ok=1 means exactly that).
func TestScenariosSower(t *testing.T) {
	if err := wanlab.Supported(); err != nil {
		t.Skipf("skipping the WAN lab scenarios: %v", err)
	}
	if testing.Short() {
		t.Skip("skipping the WAN lab scenarios in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := t.TempDir()
	// The lab runs as its own program, built without the race detector:
	// under it the router is several times slower and the swarm would
	// measure the detector. The router's races are checked by
	// internal/wanlab's tests.
	tl, err := findTools(ctx, root, "")
	if err != nil {
		t.Fatal(err)
	}
	wan := filepath.Join(root, "wan")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", wan, "github.com/sowerbt/sower/bench/wan").CombinedOutput(); err != nil {
		t.Fatalf("build bench/wan: %v\n%s", err, out)
	}
	for _, sc := range []struct {
		name  string
		scale string
	}{{"pair", "0.05"}, {"home", "0.05"}} {
		t.Run(sc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			start := time.Now()
			cmd := exec.CommandContext(ctx, wan, sc.name, "-client", "sower", "-scale", sc.scale, "-sower", tl.sower, "-dir", root)
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			t.Logf("%s took %v\n%s", sc.name, time.Since(start).Round(time.Second), out.String())
			if err != nil {
				t.Fatalf("%v\n%s", err, errb.String())
			}
			m := resultRE.FindAllStringSubmatch(out.String(), -1)
			if len(m) != 1 || m[0][1] != sc.name || m[0][2] != "sower" {
				t.Fatalf("want one RESULT line for %s/sower, got %q\n%s", sc.name, m, errb.String())
			}
			if m[0][3] != "1" {
				t.Errorf("%s: not every leecher completed with identical data\n%s", sc.name, errb.String())
			}
			list, err := exec.Command("ip", "netns", "list").Output()
			if err != nil {
				t.Fatal(err)
			}
			if prefix := "swan" + strconv.Itoa(cmd.Process.Pid) + "-"; strings.Contains(string(list), prefix) {
				t.Errorf("the lab left namespaces behind:\n%s", list)
			}
		})
	}
}

// TestPrintResults checks the table and that every RESULT line, for each
// scenario's extras, has the machine-readable form scripts rely on.
func TestPrintResults(t *testing.T) {
	for _, sc := range scenarioNames {
		p, err := buildPlan(sc, 1, 0.01)
		if err != nil {
			t.Fatal(err)
		}
		ok := &result{scenario: sc, seedClient: "aria2", leechClient: "sower", leechers: len(p.leechers()), size: p.size,
			ideal: p.ideal(), done: make([]time.Duration, len(p.leechers())), seedUp: p.size, wasted: 0, identical: len(p.leechers())}
		for i := range ok.done {
			ok.done[i] = p.ideal() + time.Duration(i)*time.Second
		}
		failed := &result{scenario: sc, seedClient: "libtorrent", leechClient: "libtorrent", leechers: len(p.leechers()),
			size: p.size, ideal: p.ideal(), done: make([]time.Duration, len(p.leechers())), wasted: -1,
			err: errors.New("seed | broke")}
		var b bytes.Buffer
		printResults(&b, p, []*result{ok, failed})
		out := b.String()
		m := resultRE.FindAllStringSubmatch(out, -1)
		if len(m) != 2 {
			t.Fatalf("%s: want 2 RESULT lines:\n%s", sc, out)
		}
		wantClient := "sower"
		if sc == "foreign-seed" {
			wantClient = "aria2"
		}
		if m[0][2] != wantClient || m[0][3] != "1" || m[1][3] != "0" || !strings.Contains(m[1][0], "ideal_x=na") {
			t.Errorf("%s: RESULT lines %q", sc, m)
		}
		if !strings.Contains(out, "seed / broke") || !strings.Contains(out, "| n/a |") {
			t.Errorf("%s: table lacks the failure or the unknown waste:\n%s", sc, out)
		}
		if sc == "nat" && !strings.Contains(out, "nat_done=") {
			t.Errorf("nat RESULT lacks nat_done:\n%s", out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine while
// another reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUpAndExec builds the pair lab with `wan up`, runs a command in its
// leecher with `wan exec` (it pings the seed through the router), and
// checks the lab is gone once `up` is interrupted.
func TestUpAndExec(t *testing.T) {
	if err := wanlab.Supported(); err != nil {
		t.Skipf("skipping the WAN lab: %v", err)
	}
	var out syncBuffer
	if err := execIn(context.Background(), []string{"nosuch-host", "--", "true"}, &out, &out); err == nil ||
		!strings.Contains(err.Error(), "nosuch-host") {
		t.Errorf("exec in a missing host: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	upCtx, stopUp := context.WithCancel(ctx)
	upErr := make(chan error, 1)
	go func() { upErr <- dispatch(upCtx, []string{"up", "pair"}, &out, io.Discard) }()
	for !strings.Contains(out.String(), "lab up") {
		select {
		case err := <-upErr:
			t.Fatalf("up ended: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("up did not come up:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Without ping (Debian's iputils-ping), the command is ip itself.
	cmd := []string{"ping", "-c", "2", "-i", "0.2", "-W", "3", "10.77.0.2"}
	want := "2 received"
	if _, err := exec.LookPath("ping"); err != nil {
		cmd, want = []string{"ip", "-br", "addr", "show", "wan0"}, "10.77.0.3"
	}
	var ping bytes.Buffer
	err := execIn(ctx, append([]string{"leech1", "-lab", strconv.Itoa(os.Getpid()), "--"}, cmd...), &ping, &ping)
	if err != nil {
		t.Errorf("exec ping: %v\n%s", err, ping.String())
	} else if !strings.Contains(ping.String(), want) {
		t.Errorf("%v in the lab's leecher: want %q in\n%s", cmd, want, ping.String())
	}
	stopUp()
	if err := <-upErr; err != nil {
		t.Errorf("up: %v", err)
	}
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if prefix := "swan" + strconv.Itoa(os.Getpid()) + "-"; strings.Contains(string(list), prefix) {
		t.Errorf("up left namespaces behind:\n%s", list)
	}
}
