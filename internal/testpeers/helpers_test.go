package testpeers

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFreePort(t *testing.T) {
	seen := make(map[int]bool)
	for range 20 {
		port := FreePort(t)
		if port < portMin || port >= portMax {
			t.Fatalf("FreePort = %d, outside %d-%d", port, portMin, portMax)
		}
		seen[port] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("FreePort = %d, but it cannot be bound: %v", port, err)
		}
		ln.Close()
	}
	if len(seen) < 10 {
		t.Errorf("20 calls of FreePort gave only %d distinct ports", len(seen))
	}
}

func TestFreePortSkipsBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(portMin+1))
	if err != nil {
		t.Skipf("cannot occupy a port for the test: %v", err)
	}
	defer ln.Close()
	if portFree(portMin + 1) {
		t.Errorf("portFree(%d) = true while it is listened on", portMin+1)
	}
}

func TestRandomFile(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "x", "same.bin")
	b := filepath.Join(dir, "y", "same.bin")
	c := filepath.Join(dir, "y", "other.bin")
	const size = 3<<20 + 17
	RandomFile(t, a, size)
	RandomFile(t, b, size)
	RandomFile(t, c, size)
	if st, err := os.Stat(a); err != nil || st.Size() != size {
		t.Fatalf("size of %s: %v %v, want %d", a, st, err, size)
	}
	if SHA256File(t, a) != SHA256File(t, b) {
		t.Error("same name and size gave different content")
	}
	if SHA256File(t, a) == SHA256File(t, c) {
		t.Error("different names gave the same content")
	}
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(data, []byte{0}) > size/128 {
		t.Error("content does not look random: too many zero bytes")
	}
	RandomFile(t, filepath.Join(dir, "empty"), 0)
	if SHA256File(t, filepath.Join(dir, "empty")) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Error("empty file has the wrong SHA-256")
	}
}

func TestCompareTrees(t *testing.T) {
	mk := func() string {
		root := t.TempDir()
		RandomFile(t, filepath.Join(root, "a.bin"), 200000)
		RandomFile(t, filepath.Join(root, "d", "b.bin"), 1000)
		if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
			t.Fatal(err)
		}
		return root
	}
	a := mk()
	if err := CompareTrees(a, mk()); err != nil {
		t.Fatalf("identical trees: %v", err)
	}
	SameTree(t, a, mk())

	cases := []struct {
		name   string
		change func(root string) error
		want   string
	}{
		{"flipped byte", func(r string) error {
			return patchByte(filepath.Join(r, "a.bin"), 123456)
		}, "differ at byte 123456"},
		{"shorter file", func(r string) error {
			return os.Truncate(filepath.Join(r, "a.bin"), 150000)
		}, "differ in size"},
		{"missing file", func(r string) error {
			return os.Remove(filepath.Join(r, "d", "b.bin"))
		}, "does not"},
		{"extra file", func(r string) error {
			return os.WriteFile(filepath.Join(r, "extra"), nil, 0o644)
		}, "extra exists"},
		{"dir for file", func(r string) error {
			if err := os.Remove(filepath.Join(r, "empty")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(r, "empty"), nil, 0o644)
		}, "is a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mk()
			if err := tc.change(b); err != nil {
				t.Fatal(err)
			}
			err := CompareTrees(a, b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CompareTrees = %v, want an error containing %q", err, tc.want)
			}
		})
	}

	// Single files compare too.
	if err := CompareTrees(filepath.Join(a, "a.bin"), filepath.Join(mk(), "a.bin")); err != nil {
		t.Errorf("identical files: %v", err)
	}
}

func patchByte(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	return err
}

func TestInfoDict(t *testing.T) {
	info := "d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:" + strings.Repeat("p", 20) + "e"
	good := "d8:announce3:url4:info" + info + "7:comment2:hie"
	got, err := infoDict([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != info {
		t.Fatalf("infoDict = %q, want %q", got, info)
	}

	bad := []struct{ in, want string }{
		{"", "offset 0"},
		{"l4:infoe", "offset 0: metainfo is not"},
		{"d4:info", "offset 7: dictionary key without value"},
		{"d4:infoi1ee", "offset 7: info is not a dictionary"},
		{"d4:infod", "offset 7: unterminated"},
		{"d4:infodeex", "offset 10: trailing data"},
		{"d3:fooi1ee", "no info dictionary"},
		{"di1e4:infoe", "offset 1: dictionary key is not a string"},
		{"d4:infod1:ai12x3ee", "offset 11: bad integer"},
		{"d4:infod1:a99:xee", "offset 11: string of 99 bytes runs past the end"},
		{"d4:infod1:a-1:xee", "offset 11: unexpected byte '-'"},
		{"d4:info" + strings.Repeat("l", 300), "nested deeper than"},
	}
	for _, tc := range bad {
		_, err := infoDict([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("infoDict(%.30q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func FuzzInfoDict(f *testing.F) {
	f.Add([]byte("d8:announce3:url4:infod6:lengthi5e4:name1:xee"))
	f.Add([]byte("d4:infod5:filesld6:lengthi1e4:pathl1:aeeee4:name1:dee"))
	f.Add([]byte("d4:infod1:ai-3eee"))
	f.Add([]byte("d4:infoi1ee"))
	f.Add([]byte("d"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := infoDict(data)
		if err != nil {
			return
		}
		if len(info) < 2 || info[0] != 'd' || info[len(info)-1] != 'e' || !bytes.Contains(data, info) {
			t.Fatalf("infoDict returned %q, not a dictionary inside the input", info)
		}
		if end, err := skipValue(info, 0, 1); err != nil || end != len(info) {
			t.Fatalf("info %q does not re-parse as one value: end %d, %v", info, end, err)
		}
	})
}

func TestMktorrentAndInfoHash(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data.bin")
	RandomFile(t, file, 1<<20+5)
	a := Mktorrent(t, file, "http://127.0.0.1:1/announce", 64<<10)
	b := Mktorrent(t, file, "http://127.0.0.1:1/announce", 64<<10)
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) {
		t.Error("mktorrent twice on the same data gave different torrents")
	}
	if !bytes.Contains(da, []byte("12:piece lengthi65536e")) || !bytes.Contains(da, []byte("8:announce27:http://127.0.0.1:1/announce")) {
		t.Errorf("torrent lacks the piece length or announce asked for: %.120q", da)
	}
	if bytes.Contains(da, []byte("7:privatei1e")) || bytes.Contains(da, []byte("13:creation date")) {
		t.Error("torrent is private or dated")
	}

	ih := InfoHash(t, a)
	info, err := infoDict(da)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha1.Sum(info); hex.EncodeToString(sum[:]) != ih {
		t.Fatalf("InfoHash = %s, want %x", ih, sum)
	}

	// Cross-check with another program's reading of the same file.
	show, err := exec.LookPath("transmission-show")
	if err != nil {
		t.Skip("transmission-show not installed: run scripts/test.sh to install it (Debian package transmission-cli)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, show, a).CombinedOutput()
	if err != nil {
		t.Fatalf("transmission-show: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Hash: ([0-9a-f]{40})`).FindSubmatch(out)
	if m == nil || string(m[1]) != ih {
		t.Fatalf("InfoHash = %s, transmission-show says:\n%s", ih, out)
	}
}
