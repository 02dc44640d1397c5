package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The CLI tests run the real binary, built once by TestMain, so exit codes
// and the split between stdout and stderr are what users get.

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sower-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin := filepath.Join(dir, "sower")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv("SOWER_TEST_BIN", bin)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// sower runs the binary in dir, bounded in time.
func sower(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("SOWER_TEST_BIN"), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run sower %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout.String(), stderr.String(), code}
}

func writeData(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var hashLine = regexp.MustCompile(`(?m)^info-hash: +([0-9a-f]{40})$`)

func TestCreateAndInfo(t *testing.T) {
	dir := t.TempDir()
	writeData(t, dir, map[string]string{
		"album/01 intro.flac":   strings.Repeat("a", 70000),
		"album/cover/front.jpg": strings.Repeat("b", 5000),
		"album/empty.txt":       "",
	})
	r := sower(t, dir, "create", "--tracker", "http://127.0.0.1:6969/announce", "--tracker", "udp://127.0.0.1:6969",
		"--webseed", "http://127.0.0.1:8080/pub/", "--private", "--piece-length", "32KiB", "--comment", "test comment",
		"--dht-node", "127.0.0.1:6881", "album")
	if r.code != 0 {
		t.Fatalf("create: exit %d, stderr %q", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("create wrote to stderr when it is not a terminal: %q", r.stderr)
	}
	mh := hashLine.FindStringSubmatch(r.stdout)
	if mh == nil || !strings.Contains(r.stdout, "magnet:?xt=urn:btih:"+mh[1]) || !strings.Contains(r.stdout, "torrent:   album.torrent") {
		t.Fatalf("create output: %q", r.stdout)
	}
	hash := mh[1]
	if _, err := os.Stat(filepath.Join(dir, "album.torrent")); err != nil {
		t.Fatalf("default output not written: %v", err)
	}

	r = sower(t, dir, "info", "album.torrent")
	if r.code != 0 {
		t.Fatalf("info: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"name:         album", "info-hash:    " + hash, "size:         73.2 KiB (75000 bytes)",
		"piece length: 32.0 KiB (32768 bytes)", "pieces:       3", "private:      yes", "created by:   sower/",
		"comment:      test comment", "files (3):", "  album/\n", "    01 intro.flac  68.4 KiB", "    cover/\n      front.jpg  4.88 KiB",
		"tier 1: http://127.0.0.1:6969/announce", "tier 2: udp://127.0.0.1:6969", "http://127.0.0.1:8080/pub/", "127.0.0.1:6881",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("info output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = sower(t, dir, "info", "--json", "album.torrent")
	if r.code != 0 {
		t.Fatalf("info --json: exit %d, stderr %q", r.code, r.stderr)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("info --json is not JSON: %v\n%s", err, r.stdout)
	}
	for key, want := range map[string]any{
		"kind": "torrent", "name": "album", "info_hash": hash, "total_size": 75000.0, "piece_length": 32768.0,
		"piece_count": 3.0, "private": true, "comment": "test comment",
	} {
		if j[key] != want {
			t.Errorf("json %s = %v, want %v", key, j[key], want)
		}
	}
	if _, ok := j["creation_date"].(string); !ok {
		t.Errorf("json creation_date = %v", j["creation_date"])
	}
	files, _ := j["files"].([]any)
	if len(files) != 3 || files[0].(map[string]any)["path"] != "album/01 intro.flac" || files[1].(map[string]any)["offset"] != 70000.0 {
		t.Errorf("json files = %v", j["files"])
	}
	if fmt.Sprint(j["trackers"]) != "[[http://127.0.0.1:6969/announce] [udp://127.0.0.1:6969]]" ||
		fmt.Sprint(j["web_seeds"]) != "[http://127.0.0.1:8080/pub/]" || fmt.Sprint(j["dht_nodes"]) != "[127.0.0.1:6881]" ||
		fmt.Sprint(j["http_seeds"]) != "[]" {
		t.Errorf("json lists: %v %v %v %v", j["trackers"], j["web_seeds"], j["dht_nodes"], j["http_seeds"])
	}

	// The magnet link printed by create is understood by info.
	magnet, _ := j["magnet"].(string)
	r = sower(t, dir, "info", "--json", magnet)
	if r.code != 0 {
		t.Fatalf("info magnet: exit %d, stderr %q", r.code, r.stderr)
	}
	var jm map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &jm); err != nil {
		t.Fatal(err)
	}
	if jm["kind"] != "magnet" || jm["info_hash"] != hash || jm["name"] != "album" || jm["total_size"] != 75000.0 ||
		fmt.Sprint(jm["select_only"]) != "[]" ||
		fmt.Sprint(jm["trackers"]) != "[http://127.0.0.1:6969/announce udp://127.0.0.1:6969]" {
		t.Errorf("magnet json = %v", jm)
	}
	r = sower(t, dir, "info", magnet)
	if r.code != 0 || !strings.Contains(r.stdout, "info-hash:  "+hash) {
		t.Errorf("info magnet text: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestCreateSingleFileAndOutput(t *testing.T) {
	dir := t.TempDir()
	writeData(t, dir, map[string]string{"data/file.bin": strings.Repeat("x", 1000)})
	out := filepath.Join(dir, "out", "my.torrent")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	r := sower(t, dir, "create", "-q", "--no-date", "-o", out, "data/file.bin")
	if r.code != 0 {
		t.Fatalf("exit %d: %q", r.code, r.stderr)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Existing output: refused without --force, replaced with it.
	r = sower(t, dir, "create", "-q", "--no-date", "-o", out, "data/file.bin")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists (use --force to overwrite)") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("overwrite without --force: exit %d, stderr %q", r.code, r.stderr)
	}
	r = sower(t, dir, "create", "-q", "--no-date", "--force", "-o", out, "data/file.bin")
	if r.code != 0 {
		t.Fatalf("--force: exit %d: %q", r.code, r.stderr)
	}
	second, _ := os.ReadFile(out)
	if !bytes.Equal(first, second) {
		t.Error("--no-date output is not reproducible")
	}
	r = sower(t, dir, "info", "--json", out)
	var j map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatal(err)
	}
	if j["name"] != "file.bin" || j["total_size"] != 1000.0 || j["creation_date"] != nil || fmt.Sprint(j["trackers"]) != "[]" {
		t.Errorf("json = %v", j)
	}
}

func TestHelp(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--help"}, {"create", "--help"}, {"info", "--help"}, {"help", "create"}} {
		r := sower(t, dir, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "sower ") {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	r := sower(t, dir, "info", "--help")
	if !strings.Contains(r.stdout, `"info_hash"`) {
		t.Error("info --help does not document the JSON format")
	}
	r = sower(t, dir, "--version")
	if r.code != 0 || !strings.Contains(r.stdout, version) {
		t.Errorf("--version: %d %q", r.code, r.stdout)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	writeData(t, dir, map[string]string{"garbage.torrent": "not a torrent", "f": "x", "empty/e": ""})
	cases := []struct {
		args  []string
		code  int
		want  string
		usage bool
	}{
		{[]string{"create"}, 2, "sower: accepts 1 arg(s), received 0", true},
		{[]string{"create", "--bogus", "f"}, 2, "sower: unknown flag: --bogus", true},
		{[]string{"create", "--piece-length", "1000", "f"}, 2, "sower: --piece-length 1000: must be a power of two", true},
		{[]string{"create", "--piece-length", "3X", "f"}, 2, "unknown unit", true},
		{[]string{"create", "missing"}, 1, "sower: create: read source: stat ", false},
		{[]string{"create", "--tracker", "ftp://x/", "f"}, 1, "sower: create: tracker \"ftp://x/\": scheme must be one of", false},
		{[]string{"create", "-o", "e.torrent", "empty"}, 1, "all files are empty", false},
		{[]string{"info"}, 2, "accepts 1 arg(s)", true},
		{[]string{"info", "garbage.torrent"}, 1, "sower: garbage.torrent: decode torrent: bencode:", false},
		{[]string{"info", "nothere.torrent"}, 1, "sower: open torrent: open nothere.torrent: no such file", false},
		{[]string{"info", "magnet:?xt=urn:btih:zz"}, 1, "sower: magnet link:", false},
		{[]string{"frobnicate"}, 2, "sower: unknown command \"frobnicate\"", true},
	}
	for _, c := range cases {
		r := sower(t, dir, c.args...)
		if r.code != c.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, r.code, c.code, r.stderr)
		}
		first, rest, _ := strings.Cut(r.stderr, "\n")
		if !strings.HasPrefix(first, "sower: ") || !strings.Contains(first, c.want) {
			t.Errorf("%v: first stderr line %q, want %q", c.args, first, c.want)
		}
		if c.usage != strings.Contains(rest, "Usage:") {
			t.Errorf("%v: usage shown = %v, want %v; stderr %q", c.args, !c.usage, c.usage, r.stderr)
		}
		if !c.usage && rest != "" {
			t.Errorf("%v: more than one line on stderr: %q", c.args, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("%v: wrote to stdout on failure: %q", c.args, r.stdout)
		}
	}
}

func TestSymlinkWarningAndVerbose(t *testing.T) {
	dir := t.TempDir()
	writeData(t, dir, map[string]string{"d/real": "data"})
	if err := os.Symlink(filepath.Join(dir, "d", "real"), filepath.Join(dir, "d", "link")); err != nil {
		t.Fatal(err)
	}
	r := sower(t, dir, "create", "-q", "d")
	if r.code != 0 || !strings.Contains(r.stderr, "skipping symbolic link") || !strings.Contains(r.stderr, filepath.Join(dir, "d", "link")) {
		t.Fatalf("symlink warning: exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "skipping") || strings.Contains(r.stderr, "level=DEBUG") {
		t.Errorf("warning on stdout or debug logs without -v: %q %q", r.stdout, r.stderr)
	}
	r = sower(t, dir, "-v", "create", "-q", "-o", "v.torrent", "d")
	if r.code != 0 || !strings.Contains(r.stderr, "level=DEBUG msg=hashing") {
		t.Fatalf("-v: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestInfoEscapesControlCharacters(t *testing.T) {
	var out bytes.Buffer
	hash := strings.Repeat("ab", 20)
	if err := runInfo(&out, "magnet:?xt=urn:btih:"+hash+"&dn=evil%1B%5B2Jname&so=0-2,5", false); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(out.String(), 0x1b) || !strings.Contains(out.String(), "evil?[2Jname") || !strings.Contains(out.String(), "only 0-2, 5-5") {
		t.Fatalf("output %q", out.String())
	}
}
