package main

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"16384", 16384}, {"8M", 8_000_000}, {"8m", 8_000_000}, {"8MB", 8_000_000},
		{"512K", 512_000}, {"2G", 2_000_000_000}, {"1T", 1_000_000_000_000},
		{"256KiB", 256 << 10}, {"4MiB", 4 << 20}, {"1gib", 1 << 30}, {"2TiB", 2 << 40},
		{"1.5MiB", 1572864}, {"0.5K", 500}, {" 10 B ", 10}, {"8M/s", 8_000_000}, {"100B", 100},
	} {
		got, err := parseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "want a number"},
		{"-5", "want a number"},
		{"abc", "want a number"},
		{"10X", "unknown unit \"X\""},
		{"10 MiBs", "unknown unit"},
		{"1.2.3M", "bad number"},
		{"0.3B", "not a whole number of bytes"},
		{"99999999999999999999", "out of range"},
		{"9999999999T", "too large"},
		{"9999999999.5TiB", "too large"},
	} {
		if _, err := parseSize(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseSize(%q) error %v, want %q", c.in, err, c.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.00 KiB"}, {1536, "1.50 KiB"}, {10 << 20, "10.0 MiB"},
		{300 << 20, "300 MiB"}, {2 << 30, "2.00 GiB"}, {1 << 62, "4.00 EiB"},
	} {
		if got := formatSize(c.in); got != c.want {
			t.Errorf("formatSize(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParsePieceLength(t *testing.T) {
	for in, want := range map[string]int64{"auto": 0, "AUTO": 0, "16KiB": 16384, "4MiB": 4 << 20, "1048576": 1 << 20} {
		if got, err := parsePieceLength(in); err != nil || got != want {
			t.Errorf("parsePieceLength(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"1000", "8KiB", "1M", "512MiB", "x"} {
		if _, err := parsePieceLength(in); err == nil {
			t.Errorf("parsePieceLength(%q) accepted", in)
		}
	}
}
