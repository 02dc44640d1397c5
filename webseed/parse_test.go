package webseed

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseContentRange(t *testing.T) {
	good := []struct {
		in   string
		want ContentRange
	}{
		{"bytes 0-0/1", ContentRange{0, 0, 1}},
		{"bytes 1000-1999/5000", ContentRange{1000, 1999, 5000}},
		{"BYTES 5-9/*", ContentRange{5, 9, -1}},
		{"bytes 0-9223372036854775806/9223372036854775807", ContentRange{0, 9223372036854775806, 9223372036854775807}},
	}
	for _, tc := range good {
		got, err := ParseContentRange(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseContentRange(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "offset 0"},
		{"items 0-1/2", "offset 0"},
		{"bytes */100", "offset 6"},
		{"bytes 0-1", "offset 9"},
		{"bytes 0 -1/2", "offset 7"},
		{"bytes -1/2", "offset 6"},
		{"bytes 5-4/10", "before first"},
		{"bytes 5-10/10", "not below length"},
		{"bytes 0-1/2 ", "offset 11: trailing"},
		{"bytes 0-1/*x", "offset 11"},
		{"bytes 0-99999999999999999999/*", "overflows"},
		{"bytes 0-1/", "complete length: offset 10"},
	}
	for _, tc := range bad {
		_, err := ParseContentRange(tc.in)
		if err == nil || !errors.Is(err, errSyntax) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseContentRange(%q) = %v, want an error mentioning %q", tc.in, err, tc.msg)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	good := []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Second},
		{" 0\r\n", 0},
		{"3600", time.Hour},
		{"3601", MaxRetryAfter},
		{"99999999999999999999999999", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
	}
	for _, tc := range good {
		got, err := ParseRetryAfter(tc.in, now)
		if err != nil || got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"  ", "empty"},
		{"12s", "offset 2"},
		{" 1 2", "offset 2"},
		{"-5", "neither"},
		{"soon", "neither"},
	}
	for _, tc := range bad {
		_, err := ParseRetryAfter(tc.in, now)
		if err == nil || !errors.Is(err, errSyntax) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseRetryAfter(%q) = %v, want an error mentioning %q", tc.in, err, tc.msg)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-0/1", "bytes 1000-1999/5000", "bytes 5-9/*", "bytes */100",
		"bytes 0-1/", "Bytes 9223372036854775807-9223372036854775807/*", "bytes 5-4/10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseContentRange(s)
		if err != nil {
			if !errors.Is(err, errSyntax) {
				t.Fatalf("error %v does not wrap errSyntax", err)
			}
			return
		}
		if cr.First < 0 || cr.Last < cr.First || cr.Size < -1 || (cr.Size >= 0 && cr.Last >= cr.Size) {
			t.Fatalf("ParseContentRange(%q) = %+v: inconsistent", s, cr)
		}
		// What was accepted prints back to the same value.
		size := "*"
		if cr.Size >= 0 {
			size = fmt.Sprint(cr.Size)
		}
		again, err := ParseContentRange(fmt.Sprintf("bytes %d-%d/%s", cr.First, cr.Last, size))
		if err != nil || again != cr {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, cr)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"30", " 0\r\n", "3601", "Fri, 02 Jan 2026 03:05:35 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"12s", "", "99999999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRetryAfter(s, now)
		if err != nil {
			if !errors.Is(err, errSyntax) {
				t.Fatalf("error %v does not wrap errSyntax", err)
			}
			return
		}
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, %v]", s, d, MaxRetryAfter)
		}
	})
}

// FuzzParseSeedURL checks that any url-list entry is refused or gives an
// HTTP(S) URL with a host and no fragment, which withPath can extend.
func FuzzParseSeedURL(f *testing.F) {
	for _, s := range []string{"http://example.com/files/", "https://h:8443/a%20b?x=1#frag", "ftp://h/x", "http:///x", "http://[::1]:80/", "http://h/%zz", "//h/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseSeedURL(raw)
		if err != nil {
			if u != nil {
				t.Fatal("URL and error both returned")
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Fragment != "" {
			t.Fatalf("parseSeedURL(%q) = %v", raw, u)
		}
		withPath(u, []string{"dir", "file name"})
	})
}
