package metainfo

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/magnet"
)

func TestParseSingleFile(t *testing.T) {
	data := bytes.Repeat([]byte("abc"), 40000) // 120000 bytes
	info := bdict("length", bint(int64(len(data))), "name", bstr("file.bin"),
		"piece length", bint(32768), "pieces", bstr(piecesFor(data, 32768)), "private", bint(1))
	torrent := bdict("announce", bstr("http://t.example/announce"), "comment", bstr("hi"),
		"created by", bstr("test"), "creation date", bint(1700000000), "info", info)
	m, err := Parse([]byte(torrent))
	if err != nil {
		t.Fatal(err)
	}
	if m.InfoHash != sha1.Sum([]byte(info)) {
		t.Errorf("info-hash is not the SHA-1 of the raw info bytes")
	}
	if string(m.InfoBytes) != info {
		t.Errorf("InfoBytes differ from the file's bytes")
	}
	in := m.Info
	if in.Name != "file.bin" || in.Length != 120000 || in.PieceLength != 32768 || !in.Private || in.IsMultiFile() {
		t.Errorf("info = %+v", in)
	}
	if in.NumPieces() != 4 || in.PieceSize(0) != 32768 || in.PieceSize(3) != 120000-3*32768 || in.PieceSize(4) != 0 || in.PieceSize(-1) != 0 {
		t.Errorf("pieces: n=%d sizes %d %d", in.NumPieces(), in.PieceSize(0), in.PieceSize(3))
	}
	if in.Pieces[1] != sha1.Sum(data[32768:65536]) {
		t.Errorf("piece 1 hash wrong")
	}
	if m.Comment != "hi" || m.CreatedBy != "test" || !m.CreationDate.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("outer fields: %q %q %v", m.Comment, m.CreatedBy, m.CreationDate)
	}
	if got := m.Tiers(); !reflect.DeepEqual(got, [][]string{{"http://t.example/announce"}}) {
		t.Errorf("Tiers = %v", got)
	}
	if got := in.FileEntries(); !reflect.DeepEqual(got, []FileEntry{{Path: "file.bin", Length: 120000}}) {
		t.Errorf("FileEntries = %v", got)
	}
}

func TestParseMultiFile(t *testing.T) {
	files := blist(
		fileEntry(100, "a.txt"),
		fileEntry(0, "empty"),
		bdict("attr", bstr("p"), "length", bint(16284), "path", blist(bstr(".pad"), bstr("16284"))),
		fileEntry(20000, "sub", "dir", "b.bin"),
		bdict("attr", bstr("x"), "length", bint(5), "path", blist(bstr("sub"), bstr("run.sh"))),
	)
	total := int64(100 + 0 + 16284 + 20000 + 5)
	info := bdict("files", files, "name", bstr("top"), "piece length", bint(16384), "pieces", bstr(fakePieces(int((total+16383)/16384))))
	m, err := Parse([]byte(bdict("info", info)))
	if err != nil {
		t.Fatal(err)
	}
	in := m.Info
	if !in.IsMultiFile() || in.TotalLength() != total || len(in.Files) != 5 {
		t.Fatalf("info = %+v", in)
	}
	want := []FileEntry{
		{Path: "top/a.txt", Length: 100, Offset: 0},
		{Path: "top/empty", Length: 0, Offset: 100},
		{Path: "top/.pad/16284", Length: 16284, Offset: 100, Padding: true},
		{Path: "top/sub/dir/b.bin", Length: 20000, Offset: 16384},
		{Path: "top/sub/run.sh", Length: 5, Offset: 36384},
	}
	if got := in.FileEntries(); !reflect.DeepEqual(got, want) {
		t.Errorf("FileEntries =\n%v\nwant\n%v", got, want)
	}
	if in.Files[4].Attr != "x" || in.Files[4].IsPadding() || !in.Files[2].IsPadding() {
		t.Errorf("attrs: %+v", in.Files)
	}
	if len(m.Tiers()) != 0 {
		t.Errorf("trackerless torrent has tiers %v", m.Tiers())
	}
}

func TestParseUnsortedKeysKeepRawHash(t *testing.T) {
	// Keys deliberately out of order, as some old creators wrote them.
	info := bdict("pieces", bstr(fakePieces(1)), "name", bstr("x"), "piece length", bint(16384), "length", bint(10))
	torrent := bdict("info", info, "announce", bstr("udp://t:1"))
	m, err := Parse([]byte(torrent))
	if err != nil {
		t.Fatal(err)
	}
	if m.InfoHash != sha1.Sum([]byte(info)) {
		t.Fatal("info-hash not over the raw (unsorted) bytes")
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("4:info"+info)) {
		t.Fatalf("Encode did not keep the info bytes verbatim: %q", out)
	}
	m2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if m2.InfoHash != m.InfoHash || m2.Announce != "udp://t:1" {
		t.Fatalf("re-parsed %x %q", m2.InfoHash, m2.Announce)
	}
}

func TestParseUTF8Variants(t *testing.T) {
	files := blist(bdict("length", bint(10), "path", blist(bstr("lat\xe9")), "path.utf-8", blist(bstr("laté"))))
	info := bdict("files", files, "name", bstr("caf\xe9"), "name.utf-8", bstr("café"), "piece length", bint(16384), "pieces", bstr(fakePieces(1)))
	m, err := Parse([]byte(bdict("info", info)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Name != "café" || m.Info.Files[0].Path[0] != "laté" {
		t.Fatalf("utf-8 variants not preferred: %q %q", m.Info.Name, m.Info.Files[0].Path)
	}
}

func TestParseOuterExtensions(t *testing.T) {
	info := singleInfo("n", 10, 16384)
	torrent := bdict(
		"announce", bstr("http://a/ann"),
		"announce-list", blist(blist(bstr("http://a/ann"), bstr("http://b/ann")), blist(), blist(bstr("udp://c:80"))),
		"httpseeds", blist(bstr("http://hs/seed.php")),
		"info", info,
		"nodes", blist(blist(bstr("router.example"), bint(6881)), blist(bstr("::1"), bint(6882))),
		"url-list", bstr("http://ws/file"),
	)
	m, err := Parse([]byte(torrent))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Tiers(), [][]string{{"http://a/ann", "http://b/ann"}, {"udp://c:80"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tiers = %v, want %v", got, want)
	}
	if got := m.WebSeeds(); !reflect.DeepEqual(got, []string{"http://ws/file"}) {
		t.Errorf("WebSeeds = %v", got)
	}
	if !reflect.DeepEqual(m.HTTPSeeds, []string{"http://hs/seed.php"}) {
		t.Errorf("HTTPSeeds = %v", m.HTTPSeeds)
	}
	if want := []string{"router.example:6881", "[::1]:6882"}; !reflect.DeepEqual(m.Nodes, want) {
		t.Errorf("Nodes = %v, want %v", m.Nodes, want)
	}
	mg, err := magnet.Parse(m.Magnet())
	if err != nil {
		t.Fatalf("magnet %q: %v", m.Magnet(), err)
	}
	want := magnet.Magnet{InfoHash: m.InfoHash, Name: "n", Length: 10,
		Trackers: []string{"http://a/ann", "http://b/ann", "udp://c:80"}, WebSeeds: []string{"http://ws/file"}}
	if !reflect.DeepEqual(*mg, want) {
		t.Errorf("magnet %q parses to %+v, want %+v", m.Magnet(), *mg, want)
	}
	// Round trip through Encode keeps every modelled field.
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	m.AnnounceList[1] = nil // the empty tier is kept as parsed but is not meaningful
	if !reflect.DeepEqual(m2.Tiers(), m.Tiers()) || !reflect.DeepEqual(m2.Nodes, m.Nodes) ||
		!reflect.DeepEqual(m2.URLList, m.URLList) || !reflect.DeepEqual(m2.HTTPSeeds, m.HTTPSeeds) || m2.InfoHash != m.InfoHash {
		t.Errorf("round trip changed fields:\n%+v\n%+v", m, m2)
	}
}

func TestParseHybridAndV2(t *testing.T) {
	hybrid := bdict("file tree", bdict("n", bdict("", bdict("length", bint(10), "pieces root", bstr(strings.Repeat("r", 32))))),
		"length", bint(10), "meta version", bint(2), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr(fakePieces(1)))
	m, err := Parse([]byte(bdict("info", hybrid, "piece layers", bdict())))
	if err != nil {
		t.Fatalf("hybrid: %v", err)
	}
	if m.Info.Length != 10 || m.InfoHash != sha1.Sum([]byte(hybrid)) {
		t.Errorf("hybrid parsed as %+v", m.Info)
	}
	v2 := bdict("file tree", bdict("n", bdict("", bdict("length", bint(10)))), "meta version", bint(2), "name", bstr("n"), "piece length", bint(16384))
	_, err = Parse([]byte(bdict("info", v2)))
	if !errors.Is(err, ErrV2Only) || !strings.Contains(err.Error(), "v2-only torrents are not supported") {
		t.Fatalf("v2-only: err = %v", err)
	}
	if _, err := ParseInfo([]byte(v2)); !errors.Is(err, ErrV2Only) {
		t.Fatalf("ParseInfo v2-only: err = %v", err)
	}
}

func TestParseInfo(t *testing.T) {
	info := singleInfo("n", 40000, 16384)
	in, err := ParseInfo([]byte(info))
	if err != nil {
		t.Fatal(err)
	}
	if in.NumPieces() != 3 || in.Name != "n" {
		t.Errorf("ParseInfo = %+v", in)
	}
	if _, err := ParseInfo([]byte(bdict("length", bint(-1), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr("")))); err == nil || !strings.Contains(err.Error(), "info.length: negative") {
		t.Errorf("ParseInfo negative length: %v", err)
	}
	if _, err := ParseInfo(nil); err == nil {
		t.Error("ParseInfo(nil) succeeded")
	}
	if _, err := ParseInfo([]byte("le")); err == nil || !strings.Contains(err.Error(), "want dictionary, got list") {
		t.Errorf("ParseInfo(list): %v", err)
	}
}

// TestParseHostile feeds malformed and malicious torrents; each must fail
// with an error naming the problem.
func TestParseHostile(t *testing.T) {
	p1 := fakePieces(1)
	multi := func(files ...string) string {
		return bdict("info", bdict("files", blist(files...), "name", bstr("top"), "piece length", bint(16384), "pieces", bstr(p1)))
	}
	single := func(kv ...string) string { return bdict("info", bdict(kv...)) }
	cases := []struct {
		name, input, want string
	}{
		{"empty input", "", "empty torrent file"},
		{"not bencode", "hello", "decode torrent"},
		{"top level list", "le", "top level: want dictionary, got list"},
		{"no info", bdict("announce", bstr("x")), "info: missing"},
		{"info is a string", bdict("info", bstr("x")), "info: want dictionary, got string"},
		{"missing name", single("length", bint(10), "piece length", bint(16384), "pieces", bstr(p1)), "info.name: missing"},
		{"empty name", single("length", bint(10), "name", bstr(""), "piece length", bint(16384), "pieces", bstr(p1)), "info.name: component 0 \"\": empty name"},
		{"name is dot-dot", single("length", bint(10), "name", bstr(".."), "piece length", bint(16384), "pieces", bstr(p1)), "info.name: component 0 \"..\""},
		{"name with slash", single("length", bint(10), "name", bstr("a/b"), "piece length", bint(16384), "pieces", bstr(p1)), "info.name: component 0 \"a/b\": contains '/'"},
		{"name is int", single("length", bint(10), "name", bint(3), "piece length", bint(16384), "pieces", bstr(p1)), "info.name: want string, got integer"},
		{"missing piece length", single("length", bint(10), "name", bstr("n"), "pieces", bstr(p1)), "info.piece length: missing"},
		{"zero piece length", single("length", bint(10), "name", bstr("n"), "piece length", bint(0), "pieces", bstr(p1)), "info.piece length: must be positive, got 0"},
		{"negative piece length", single("length", bint(10), "name", bstr("n"), "piece length", bint(-16384), "pieces", bstr(p1)), "info.piece length: must be positive"},
		{"absurd piece length", single("length", bint(10), "name", bstr("n"), "piece length", bint(1<<40), "pieces", bstr(p1)), "exceeds the 256 MiB limit"},
		{"missing pieces", single("length", bint(10), "name", bstr("n"), "piece length", bint(16384)), "info.pieces: missing"},
		{"wrong hash string length", single("length", bint(10), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr(p1[:19])), "info.pieces: length 19 is not a multiple of 20"},
		{"too few pieces", single("length", bint(40000), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr(fakePieces(2))), "info.pieces: 2 hashes, but total length 40000 with piece length 16384 needs 3"},
		{"too many pieces", single("length", bint(10), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr(fakePieces(2))), "needs 1"},
		{"negative length", single("length", bint(-5), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr("")), "info.length: negative (-5)"},
		{"zero length", single("length", bint(0), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr("")), "torrent has no data"},
		{"both length and files", single("files", blist(fileEntry(10, "a")), "length", bint(10), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr(p1)), "has both length"},
		{"neither length nor files", single("name", bstr("n"), "piece length", bint(16384), "pieces", bstr(p1)), "has neither length"},
		{"empty files", single("files", blist(), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr("")), "info.files: empty list"},
		{"files not a list", single("files", bstr("x"), "name", bstr("n"), "piece length", bint(16384), "pieces", bstr(p1)), "info.files: want list, got string"},
		{"file not a dict", multi(bint(1)), "info.files[0]: want dictionary, got integer"},
		{"path traversal", multi(fileEntry(5, "ok"), fileEntry(5, "..", "..", "etc", "passwd")), "info.files[1].path: component 0 \"..\": relative directory reference"},
		{"dot component", multi(fileEntry(5, "a", ".", "b")), "info.files[0].path: component 1 \".\""},
		{"absolute path", multi(fileEntry(5, "/etc/passwd")), "info.files[0].path: component 0 \"/etc/passwd\": absolute path"},
		{"backslash", multi(fileEntry(5, "..\\..\\x")), "contains '\\'"},
		{"NUL in name", multi(fileEntry(5, "a\x00b")), "contains NUL byte"},
		{"empty component", multi(fileEntry(5, "a", "", "b")), "info.files[0].path: component 1 \"\": empty name"},
		{"empty path list", multi(bdict("length", bint(5), "path", blist())), "info.files[0].path: empty path"},
		{"missing path", multi(bdict("length", bint(5))), "info.files[0].path: missing"},
		{"path not strings", multi(bdict("length", bint(5), "path", blist(bint(1)))), "info.files[0].path[0]: want string, got integer"},
		{"negative file length", multi(fileEntry(-1, "a"), fileEntry(11, "b")), "info.files[0].length: negative (-1)"},
		{"missing file length", multi(bdict("path", blist(bstr("a")))), "info.files[0].length: missing"},
		{"size overflow", multi(fileEntry(1<<62, "a"), fileEntry(1<<62, "b"), fileEntry(1<<62, "c"), fileEntry(1<<62, "d")), "info.files[1].length: total size overflows"},
		{"duplicate file", multi(fileEntry(5, "a"), fileEntry(5, "a")), "info.files[1].path: \"a\" duplicates info.files[0]"},
		{"file is also a folder", multi(fileEntry(5, "a"), fileEntry(5, "a", "b")), "folder \"a\" is the file info.files[0]"},
		{"folder is also a file", multi(fileEntry(5, "a", "b"), fileEntry(5, "a")), "\"a\" is a folder of info.files[0]"},
		{"announce not a string", bdict("announce", bint(1), "info", singleInfo("n", 10, 16384)), "announce: want string, got integer"},
		{"announce-list flat", bdict("announce-list", blist(bstr("http://x")), "info", singleInfo("n", 10, 16384)), "announce-list[0]: want list, got string"},
		{"url-list of ints", bdict("info", singleInfo("n", 10, 16384), "url-list", blist(bint(1))), "url-list[0]: want string, got integer"},
		{"bad node", bdict("info", singleInfo("n", 10, 16384), "nodes", blist(blist(bstr("h"), bint(70000)))), "nodes[0]: port: want integer 1..65535"},
		{"bad node host", bdict("info", singleInfo("n", 10, 16384), "nodes", blist(blist(bstr("a]b"), bint(1)))), "nodes[0]: host \"a]b\""},
		{"bad creation date", bdict("creation date", bstr("yesterday"), "info", singleInfo("n", 10, 16384)), "creation date: want integer, got string"},
		{"huge string length prefix", "d4:info99999999999999:xe", "decode torrent: bencode: string length"},
		{"deeply nested lists", "d4:info" + strings.Repeat("l", 100000) + strings.Repeat("e", 100000) + "e", "decode torrent: bencode: nesting deeper than 128"},
		{"trailing garbage", bdict("info", singleInfo("n", 10, 16384)) + "x", "decode torrent: bencode: trailing data"},
		{"duplicate key", "d4:infod4:name1:n4:name1:mee", "decode torrent: bencode: duplicate dict key \"name\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse([]byte(c.input))
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestValidatePathWindows(t *testing.T) {
	for _, c := range []struct {
		comp string
		ok   bool
	}{
		{"readme.txt", true}, {"CON", false}, {"con.txt", false}, {"Lpt9", false}, {"COM10", true},
		{"name.", false}, {"name ", false}, {"a:b", false}, {"a?b", false}, {"tab\there", false},
		{"ünïcødé 日本", true}, {"NUL .txt", false},
	} {
		err := validatePathOS("windows", []string{"dir", c.comp})
		if (err == nil) != c.ok {
			t.Errorf("windows %q: err = %v, want ok=%v", c.comp, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "component 1") {
			t.Errorf("windows %q: error %q does not name the component", c.comp, err)
		}
	}
	// The same names are fine elsewhere.
	if err := validatePathOS("linux", []string{"CON", "name.", "a:b"}); err != nil {
		t.Errorf("linux: %v", err)
	}
	if err := ValidatePath(nil); err == nil {
		t.Error("empty path accepted")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.torrent")
	if err := os.WriteFile(good, []byte(bdict("info", singleInfo("n", 10, 16384))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "missing.torrent")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.torrent")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	f.Close()
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than the 64 MiB limit") {
		t.Errorf("big file: %v", err)
	}
	bad := filepath.Join(dir, "bad.torrent")
	if err := os.WriteFile(bad, []byte("d4:infoi1ee"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file error does not name the file: %v", err)
	}
}

func TestEncodeWithoutInfoBytes(t *testing.T) {
	if _, err := (&MetaInfo{}).Encode(); err == nil {
		t.Fatal("Encode without InfoBytes succeeded")
	}
}
