package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"96MiB", 96 << 20}, {"256KiB", 256 << 10}, {"1GiB", 1 << 30}, {"1000", 1000}, {"12B", 12}} {
		got, err := parseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "0", "1.5MiB", "9999999999GiB", "12TB"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-n", "6,32", "-size", "1MiB", "-impl", "sower,aria2", "-modes", "super-seed,default"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.leechers) != 2 || o.leechers[1] != 32 || o.sizes[0] != 1<<20 || o.piece != 256<<10 {
		t.Errorf("parsed %+v", o)
	}
	if m := o.modes["sower"]; len(m) != 1 || m[0] != ModeSuperSeed {
		t.Errorf("sower modes %v, want only super-seed", m)
	}
	if m := o.modes["aria2"]; len(m) != 1 || m[0] != ModeDefault {
		t.Errorf("aria2 modes %v, want default", m)
	}
	for _, bad := range [][]string{{"-n", "0"}, {"-impl", "qbittorrent"}, {"-piece", "10000"}, {"-rate", "10"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestSummarise(t *testing.T) {
	r := Result{Size: 100, Leechers: 3, Ideal: 10 * time.Second, SeedUp: 150, TotalUp: 330}
	r.summarise([]time.Duration{30 * time.Second, 10 * time.Second, 20 * time.Second})
	if r.First != 10*time.Second || r.Median != 20*time.Second || r.Last != 30*time.Second {
		t.Errorf("first/median/last = %v/%v/%v", r.First, r.Median, r.Last)
	}
	if r.Slowdown() != 3 || r.Copies() != 1.5 || r.Excess() != 30 {
		t.Errorf("slowdown %v copies %v excess %v", r.Slowdown(), r.Copies(), r.Excess())
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	printTable(&b, 6, 96<<20, 8_000_000, []Result{
		{Impl: "sower", Mode: ModeAllRequested, Leechers: 6, Size: 96 << 20, Ideal: time.Second, Last: 2 * time.Second, SeedUp: 96 << 20, TotalUp: 7 * 96 << 20, Wasted: 1 << 20},
		{Impl: "aria2", Mode: ModeDefault, Wasted: -1, Size: 1, Ideal: time.Second},
		{Impl: "libtorrent", Mode: ModeSuperSeed, Note: "failed: boom"},
	})
	out := b.String()
	for _, want := range []string{"ideal 12.58 s", "| sower | endgame=all-requested |", "| 2.00x | 1.00 | 1.0 MiB | 96.0 MiB |", "| aria2 | default |", "n/a", "failed: boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestLtLines(t *testing.T) {
	l := &ltPeer{changed: make(chan struct{}, 1)}
	for _, s := range []string{"port 4242", "ready", "complete 1700000000.250000", "stats uploaded=10 downloaded=20 redundant=3 failed=0 peers=2", "error boom", "error later"} {
		l.line(s)
	}
	if l.port != 4242 || !l.ready || l.complete.UnixMilli() != 1700000000250 || l.stats["redundant"] != 3 || l.errText != "boom" {
		t.Errorf("state %+v", l)
	}
}

func TestAria2Complete(t *testing.T) {
	for _, c := range []struct {
		s    aria2Status
		want bool
	}{
		{aria2Status{Status: "active", TotalLength: "10", CompletedLength: "10"}, true},
		{aria2Status{Status: "active", TotalLength: "10", CompletedLength: "9"}, false},
		{aria2Status{Status: "active", TotalLength: "10", CompletedLength: "10", VerifiedLength: "5"}, false},
		{aria2Status{Status: "active", TotalLength: "0", CompletedLength: "0"}, false},
		{aria2Status{Status: "error", TotalLength: "10", CompletedLength: "10"}, false},
	} {
		if got := c.s.complete(); got != c.want {
			t.Errorf("%+v complete = %v", c.s, got)
		}
	}
}

// TestTracker checks that the tracker's reply is valid bencode listing
// every peer, served on loopback until its context ends.
func TestTracker(t *testing.T) {
	peers := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6881"), netip.MustParseAddrPort("127.0.0.1:1")}
	reply, err := staticReply(peers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := staticReply([]netip.AddrPort{netip.MustParseAddrPort("[::1]:1")}); err == nil {
		t.Error("IPv6 peer accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	url, wait, err := serveTracker(ctx, reply)
	if err != nil {
		t.Fatal(err)
	}
	defer wait()
	defer cancel()
	resp, err := http.Get(url + "?info_hash=x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Interval int    `bencode:"interval"`
		Peers    string `bencode:"peers"`
	}
	if err := bencode.Unmarshal(body, &got); err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	want := "\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x01\x00\x01"
	if got.Peers != want || got.Interval != 5 {
		t.Errorf("reply %+v, want peers %q", got, want)
	}
}

func TestParseUnix(t *testing.T) {
	got, err := parseUnix("1700000000.000001")
	if err != nil || got.UnixMicro() != 1700000000000001 {
		t.Errorf("parseUnix = %v, %v", got, err)
	}
	if got, err := parseUnix("12"); err != nil || got.Unix() != 12 {
		t.Errorf("parseUnix(12) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "1.-5", "1.1234567890", "1.1e5"} {
		if _, err := parseUnix(bad); err == nil {
			t.Errorf("parseUnix(%q) succeeded", bad)
		}
	}
}

// FuzzLtLine feeds arbitrary lines from the libtorrent script to the
// parser: it must never panic, and a parsed completion time must print back
// as the same instant.
func FuzzLtLine(f *testing.F) {
	for _, s := range []string{"port 4242", "ready", "complete 1700000000.250000",
		"stats uploaded=10 downloaded=20 redundant=3 failed=0 peers=2", "error boom", "stats x==1 =2 y=", "complete -1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := &ltPeer{changed: make(chan struct{}, 1)}
		l.line(s)
		if word, rest, _ := strings.Cut(s, " "); word == "complete" {
			if at, err := parseUnix(rest); err == nil && !l.complete.Equal(at) {
				t.Errorf("complete %q parsed as %v, want %v", rest, l.complete, at)
			}
		}
		if at, err := parseUnix(s); err == nil {
			if at.Nanosecond() < 0 || at.Nanosecond() >= 1e9 {
				t.Errorf("parseUnix(%q) = %v: nanoseconds out of range", s, at)
			}
		}
	})
}
