package metainfo

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// internally consistent and survives an Encode/Parse round trip with the
// same info-hash.
func FuzzParse(f *testing.F) {
	f.Add([]byte(bdict("info", singleInfo("n", 10, 16384))))
	f.Add([]byte(bdict("announce", bstr("http://a/"), "info", bdict("files", blist(fileEntry(5, "a", "b"), fileEntry(0, "c")), "name", bstr("t"), "piece length", bint(4), "pieces", bstr(fakePieces(2))))))
	f.Add([]byte(bdict("info", bdict("pieces", bstr(fakePieces(1)), "name", bstr("x"), "piece length", bint(16384), "length", bint(10)))))
	f.Add([]byte(bdict("info", bdict("files", blist(fileEntry(5, "..", "x")), "name", bstr("t"), "piece length", bint(16384), "pieces", bstr(fakePieces(1))))))
	f.Add([]byte(bdict("info", bdict("meta version", bint(2), "name", bstr("n"), "piece length", bint(16384)))))
	f.Add([]byte("d4:info" + strings.Repeat("l", 200) + strings.Repeat("e", 200) + "e"))
	real, _ := filepath.Glob(filepath.Join("testdata", "real", "*.torrent"))
	for _, p := range real {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if m != nil {
				t.Fatal("non-nil result with an error")
			}
			return
		}
		if m.InfoHash != sha1.Sum(m.InfoBytes) {
			t.Fatal("InfoHash is not SHA-1 of InfoBytes")
		}
		in := &m.Info
		total := in.TotalLength()
		if total <= 0 || in.PieceLength <= 0 || int64(in.NumPieces()) != (total+in.PieceLength-1)/in.PieceLength {
			t.Fatalf("inconsistent sizes: total %d, piece length %d, %d pieces", total, in.PieceLength, in.NumPieces())
		}
		var sum int64
		for i := range in.NumPieces() {
			s := in.PieceSize(i)
			if s <= 0 || s > in.PieceLength {
				t.Fatalf("piece %d size %d", i, s)
			}
			sum += s
		}
		if sum != total {
			t.Fatalf("piece sizes sum to %d, total %d", sum, total)
		}
		var off int64
		for _, e := range in.FileEntries() {
			if e.Offset != off || e.Length < 0 {
				t.Fatalf("entry %+v at offset %d", e, off)
			}
			off += e.Length
			if err := ValidatePath(strings.Split(e.Path, "/")); err != nil {
				t.Fatalf("unsafe path %q accepted: %v", e.Path, err)
			}
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of an accepted torrent: %v", err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if m2.InfoHash != m.InfoHash || !reflect.DeepEqual(m2.Info, m.Info) {
			t.Fatal("round trip changed the info")
		}
		if _, err := ParseInfo(m.InfoBytes); err != nil {
			t.Fatalf("ParseInfo rejects what Parse accepted: %v", err)
		}
	})
}

// TestRealTorrents parses torrents made by mktorrent 1.1 and libtorrent 2.0
// (kept in testdata/real) and checks the info-hashes those tools reported.
func TestRealTorrents(t *testing.T) {
	for name, want := range map[string]string{
		"mk_multi.torrent":  "fb2dd6cb8669e124b9459f61ba21b75d1dae53d0",
		"mk_single.torrent": "206442c13949f9da4efa68478cb8145e8ed633ae",
		"lt_multi.torrent":  "674b80bae44f966ff2ee970767b3d7ed3c8ad974",
		"lt_single.torrent": "d0da065787e055d57c2258f0361f5712bc944a35",
		"lt_hybrid.torrent": "53053b6940eadd039b8127d74b3c5e62b149b69c",
	} {
		m, err := Load(filepath.Join("testdata", "real", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := hex.EncodeToString(m.InfoHash[:]); got != want {
			t.Errorf("%s: info-hash %s, want %s", name, got, want)
		}
	}
	if _, err := Load(filepath.Join("testdata", "real", "lt_v2.torrent")); !errors.Is(err, ErrV2Only) {
		t.Errorf("lt_v2.torrent: err = %v, want ErrV2Only", err)
	}
	m, err := Load(filepath.Join("testdata", "real", "lt_hybrid.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	// libtorrent pads every file but the last to a piece boundary in hybrid torrents.
	var pads int
	for _, f := range m.Info.Files {
		if f.IsPadding() {
			pads++
		}
	}
	if pads == 0 {
		t.Error("hybrid torrent: no padding files found")
	}
}

// FuzzParseInfo checks that any info dictionary (as fetched from peers
// for a magnet link) is refused or gives an Info that is consistent.
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae",
		"d5:filesld6:lengthi3e4:pathl1:x1:yeed6:lengthi2e4:pathl1:zeee4:name3:dir12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae",
		"d6:lengthi5e4:name2:..12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae",
		"d6:lengthi-5e4:name1:a12:piece lengthi0e6:pieces0:e",
		"l" + "dede" + "e",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ParseInfo(b)
		if err != nil {
			if info != nil {
				t.Fatal("info and error both returned")
			}
			return
		}
		if info.PieceLength <= 0 || info.TotalLength() < 0 || info.Name == "" {
			t.Fatalf("ParseInfo(%q): %+v", b, info)
		}
	})
}
