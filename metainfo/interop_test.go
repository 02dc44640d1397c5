package metainfo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The interop tests check sower against the Debian programs mktorrent,
// transmission-show and python3-libtorrent. Each is skipped, saying why,
// when its program is not installed.

const python = "/usr/bin/python3"

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install %s): skipping interop check", name, name)
	}
	return p
}

func needLibtorrent(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import libtorrent").Run(); err != nil {
		t.Skipf("python3-libtorrent not usable with %s (%v): skipping interop check", python, err)
	}
}

func runTool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// ltTorrent is what testdata/interop.py reports about a torrent.
type ltTorrent struct {
	InfoHash    string   `json:"info_hash"`
	Name        string   `json:"name"`
	PieceLength int64    `json:"piece_length"`
	NumPieces   int      `json:"num_pieces"`
	TotalSize   int64    `json:"total_size"`
	Private     bool     `json:"private"`
	Files       []ltFile `json:"files"`
	Trackers    []string `json:"trackers"`
	WebSeeds    []string `json:"web_seeds"`
}

type ltFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Pad  bool   `json:"pad"`
}

func libtorrentShow(t *testing.T, torrent string) ltTorrent {
	t.Helper()
	var lt ltTorrent
	if err := json.Unmarshal(runTool(t, python, filepath.Join("testdata", "interop.py"), "show", torrent), &lt); err != nil {
		t.Fatal(err)
	}
	return lt
}

// transmissionShow returns the info-hash and the file paths, in torrent
// order, that transmission-show reports.
func transmissionShow(t *testing.T, torrent string) (hash string, files []string) {
	t.Helper()
	out := runTool(t, "transmission-show", "-u", torrent)
	sc := bufio.NewScanner(bytes.NewReader(out))
	section := ""
	for sc.Scan() {
		line := sc.Text()
		if line != "" && !strings.HasPrefix(line, " ") {
			section = line
			continue
		}
		l := strings.TrimSpace(line)
		switch {
		case section == "GENERAL" && (strings.HasPrefix(l, "Hash:") || strings.HasPrefix(l, "Hash v1:")):
			hash = strings.TrimSpace(l[strings.Index(l, ":")+1:])
		case section == "FILES" && l != "":
			// "path (size)"; the size is rounded, so only the path is kept.
			if i := strings.LastIndex(l, " ("); i >= 0 {
				files = append(files, l[:i])
			}
		}
	}
	return hash, files
}

// interopCases are the layouts every tool must agree on. The piece length
// is 32 KiB, the smallest mktorrent accepts.
func interopCases() []struct {
	name   string
	single bool
	files  map[string][]byte
} {
	const pl = 32 << 10
	return []struct {
		name   string
		single bool
		files  map[string][]byte
	}{
		{"single", true, map[string][]byte{"single.bin": randBytes(21, 100000)}},
		{"multi", false, map[string][]byte{"a.bin": randBytes(22, 70000), "b.bin": randBytes(23, 3000), "c.txt": []byte("hello\n")}},
		{"nested", false, map[string][]byte{"x/y/z/deep.bin": randBytes(24, 50000), "x/top.bin": randBytes(25, 40000), "w.bin": randBytes(26, 10)}},
		{"empty file", false, map[string][]byte{"empty": {}, "full.bin": randBytes(27, 40000), "sub/empty2": {}}},
		{"exact multiple", false, map[string][]byte{"p1.bin": randBytes(28, pl), "p2.bin": randBytes(29, 2*pl)}},
		{"small", false, map[string][]byte{"tiny1": {1}, "tiny2": {2, 3}}},
		{"unicode", false, map[string][]byte{"日本語/ファイル.bin": randBytes(30, 33000), "café/naïve résumé.txt": randBytes(31, 1000), "Ωmega 🎉.dat": randBytes(32, 5)}},
	}
}

// setupCase writes a case's files and returns the path to hand to the
// creators: the file itself for a single-file case, else the folder.
func setupCase(t *testing.T, single bool, files map[string][]byte) string {
	dir := filepath.Join(t.TempDir(), "tørrent data")
	writeTree(t, dir, files)
	if single {
		for name := range files {
			return filepath.Join(dir, name)
		}
	}
	return dir
}

// TestInteropSowerAccepted checks that torrents built by sower are read by
// libtorrent and transmission-show with the same info-hash and file list.
func TestInteropSowerAccepted(t *testing.T) {
	needLibtorrent(t)
	needTool(t, "transmission-show")
	for _, c := range interopCases() {
		t.Run(c.name, func(t *testing.T) {
			root := setupCase(t, c.single, c.files)
			m, err := Build(context.Background(), root, BuildOptions{
				PieceLength: 32 << 10, NoDate: true,
				Trackers: []string{"http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"},
				WebSeeds: []string{"http://127.0.0.1:8080/files/"},
				Private:  c.name == "nested",
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			data, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			tf := filepath.Join(t.TempDir(), "sower.torrent")
			if err := os.WriteFile(tf, data, 0o644); err != nil {
				t.Fatal(err)
			}
			hash := hex.EncodeToString(m.InfoHash[:])
			var wantLT []ltFile
			var wantPaths []string
			for _, e := range m.Info.FileEntries() {
				wantLT = append(wantLT, ltFile{Path: e.Path, Size: e.Length})
				wantPaths = append(wantPaths, e.Path)
			}

			lt := libtorrentShow(t, tf)
			if lt.InfoHash != hash {
				t.Errorf("libtorrent info-hash %s, sower %s", lt.InfoHash, hash)
			}
			if !reflect.DeepEqual(lt.Files, wantLT) {
				t.Errorf("libtorrent files %+v, want %+v", lt.Files, wantLT)
			}
			if lt.NumPieces != m.Info.NumPieces() || lt.PieceLength != m.Info.PieceLength ||
				lt.TotalSize != m.Info.TotalLength() || lt.Private != m.Info.Private || lt.Name != m.Info.Name {
				t.Errorf("libtorrent sees %+v", lt)
			}
			if !reflect.DeepEqual(lt.Trackers, []string{"http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"}) ||
				!reflect.DeepEqual(lt.WebSeeds, []string{"http://127.0.0.1:8080/files/"}) {
				t.Errorf("libtorrent trackers %v, web seeds %v", lt.Trackers, lt.WebSeeds)
			}

			trHash, trFiles := transmissionShow(t, tf)
			if trHash != hash {
				t.Errorf("transmission-show info-hash %q, sower %s", trHash, hash)
			}
			if !reflect.DeepEqual(trFiles, wantPaths) {
				t.Errorf("transmission-show files %q, want %q", trFiles, wantPaths)
			}
		})
	}
}

// TestInteropMktorrent parses torrents made by mktorrent: the info-hash
// must be the one libtorrent computes, and, since mktorrent orders files
// the same way and adds nothing else to the info dictionary, equal to the
// one sower builds from the same data.
func TestInteropMktorrent(t *testing.T) {
	mk := needTool(t, "mktorrent")
	needLibtorrent(t)
	for _, c := range interopCases() {
		t.Run(c.name, func(t *testing.T) {
			root := setupCase(t, c.single, c.files)
			tf := filepath.Join(t.TempDir(), "mk.torrent")
			runTool(t, mk, "-d", "-l", "15", "-a", "http://127.0.0.1:6969/announce", "-o", tf, root)
			m, err := Load(tf)
			if err != nil {
				t.Fatal(err)
			}
			lt := libtorrentShow(t, tf)
			if got := hex.EncodeToString(m.InfoHash[:]); got != lt.InfoHash {
				t.Errorf("sower parses info-hash %s, libtorrent %s", got, lt.InfoHash)
			}
			if len(lt.Files) != len(m.Info.FileEntries()) {
				t.Errorf("libtorrent sees %d files, sower %d", len(lt.Files), len(m.Info.FileEntries()))
			}
			built, err := Build(context.Background(), root, BuildOptions{PieceLength: 32 << 10, NoDate: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if built.InfoHash != m.InfoHash {
				t.Errorf("sower builds info-hash %x from the same data, mktorrent %x\nsower %q\nmktorrent %q",
					built.InfoHash, m.InfoHash, built.InfoBytes[:min(200, len(built.InfoBytes))], m.InfoBytes[:min(200, len(m.InfoBytes))])
			}
		})
	}
}

// TestInteropLibtorrent parses v1 torrents made by libtorrent's
// create_torrent and checks the info-hash and files it reports.
func TestInteropLibtorrent(t *testing.T) {
	needLibtorrent(t)
	for _, c := range interopCases() {
		t.Run(c.name, func(t *testing.T) {
			root := setupCase(t, c.single, c.files)
			tf := filepath.Join(t.TempDir(), "lt.torrent")
			hash := strings.TrimSpace(string(runTool(t, python, filepath.Join("testdata", "interop.py"), "create", root, "16384", tf)))
			m, err := Load(tf)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(m.InfoHash[:]); got != hash {
				t.Errorf("sower parses info-hash %s, libtorrent reported %s", got, hash)
			}
			lt := libtorrentShow(t, tf)
			var got []ltFile
			for _, e := range m.Info.FileEntries() {
				got = append(got, ltFile{Path: e.Path, Size: e.Length, Pad: e.Padding})
			}
			if !reflect.DeepEqual(got, lt.Files) {
				t.Errorf("files %+v, libtorrent %+v", got, lt.Files)
			}
			if m.Info.NumPieces() != lt.NumPieces {
				t.Errorf("%d pieces, libtorrent %d", m.Info.NumPieces(), lt.NumPieces)
			}
		})
	}
}
