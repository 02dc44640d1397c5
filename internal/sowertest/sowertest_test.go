package sowertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestNoDHT(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"get", "x.torrent"}, []string{"get", "--no-dht", "x.torrent"}},
		{[]string{"seed", "x.torrent", "dir"}, []string{"seed", "--no-dht", "x.torrent", "dir"}},
		{[]string{"get", "-q", "--no-dht", "x"}, []string{"get", "-q", "--no-dht", "x"}},
		{[]string{"get", "--dht-bootstrap", "127.0.0.1:1", "x"}, []string{"get", "--dht-bootstrap", "127.0.0.1:1", "x"}},
		{[]string{"dht", "--listen", "127.0.0.1:0"}, []string{"dht", "--listen", "127.0.0.1:0"}},
		{[]string{"create", "get"}, []string{"create", "get"}},
	} {
		if got := noDHT(slices.Clone(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("noDHT(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHasLine(t *testing.T) {
	log := "time=1 level=INFO msg=started port=1\ntime=2 msg=\"peer connected\" client=aria2\n"
	for _, tc := range []struct {
		parts []string
		want  bool
	}{
		{[]string{`msg="peer connected"`, "aria2"}, true},
		{[]string{"aria2", `msg="peer connected"`}, true},
		{[]string{"msg=started", "aria2"}, false}, // on two different lines
		{[]string{"nowhere"}, false},
		{nil, true},
	} {
		if got := HasLine(log, tc.parts...); got != tc.want {
			t.Errorf("HasLine(%q) = %v, want %v", tc.parts, got, tc.want)
		}
	}
}

func TestCopyTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "top")
	files := map[string]string{"a.txt": "alpha", "sub/b.bin": "beta", "sub/deeper/empty": ""}
	for name, content := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "copy")
	CopyTree(t, src, dst)
	for name, content := range files {
		b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != content {
			t.Errorf("%s: got %q, want %q", name, b, content)
		}
	}
	// The copy is independent of the original.
	if err := os.WriteFile(filepath.Join(dst, "a.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(src, "a.txt")); string(b) != "alpha" {
		t.Errorf("original changed to %q", b)
	}
}

// shell returns the path of sh, which accepts the -v that Start adds, to
// stand in for sower; the test is skipped without it.
func shell(t *testing.T) string {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("no sh: %v", err)
	}
	return sh
}

func TestProcExit(t *testing.T) {
	sh := shell(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	ok := Start(t, sh, "ok", "-c", "echo out-line; echo err-line >&2")
	ok.ExitOK(t, 30*time.Second)
	if !ok.Exited() || ok.Err() != nil {
		t.Fatalf("after ExitOK: exited %v, err %v", ok.Exited(), ok.Err())
	}
	out := ok.Output(t)
	if !strings.Contains(out, "out-line\n") || !strings.Contains(out, "err-line\n") {
		t.Errorf("log lacks stdout or stderr: %q", out)
	}
	if tail := ok.Tail(1); tail != "err-line" {
		t.Errorf("Tail(1) = %q, want %q", tail, "err-line")
	}

	bad := Start(t, sh, "bad", "-c", "echo value=42; exit 3")
	if m := bad.WaitLog(t, ctx, regexp.MustCompile(`value=(\d+)`)); m[1] != "42" {
		t.Errorf("WaitLog submatch %q, want 42", m[1])
	}
	var ee *exec.ExitError
	if err := bad.Wait(ctx); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
}

func TestProcSignal(t *testing.T) {
	sh := shell(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := Start(t, sh, "sleeper", "-c", "echo up; exec sleep 60")
	p.WaitLog(t, ctx, regexp.MustCompile(`(?m)^up$`))
	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	err := p.Wait(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) || p.Exited() || p.Err() != nil {
		t.Fatalf("running process: Wait = %v, Exited %v, Err %v", err, p.Exited(), p.Err())
	}
	p.Signal(t, syscall.SIGTERM)
	<-p.Done()
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) {
		t.Fatalf("after SIGTERM: Err = %v, want an exit error", p.Err())
	}
	p.Signal(t, syscall.SIGTERM) // an ended process is not an error
}

func TestStartLines(t *testing.T) {
	sh := shell(t)
	var mu sync.Mutex
	var got []string
	p := StartLines(t, sh, "lines", func(line string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, line)
	}, "-c", "echo one; echo two; echo err >&2")
	p.ExitOK(t, 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("stdout lines %q, want one, two", got)
	}
	// The log merges two pipes as they are read, so the stderr line may
	// fall anywhere; stdout's lines keep their order.
	out := p.Output(t)
	one, two := strings.Index(out, "one\n"), strings.Index(out, "two\n")
	if one < 0 || two < one || !strings.Contains(out, "err\n") {
		t.Errorf("log %q lacks the stdout lines in order or the stderr line", out)
	}
}
