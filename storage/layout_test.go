package storage

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func mustLayout(t testing.TB, files []File, pl int64) *Layout {
	t.Helper()
	l, err := NewLayout(files, pl)
	if err != nil {
		t.Fatalf("NewLayout: %v", err)
	}
	return l
}

func TestLayoutPieceSpansThreeFiles(t *testing.T) {
	l := mustLayout(t, []File{{Path: "t/a", Length: 5}, {Path: "t/b", Length: 3}, {Path: "t/c", Length: 10}}, 16)
	if l.NumPieces() != 2 || l.TotalLength() != 18 || l.PieceLength() != 16 {
		t.Fatalf("pieces %d total %d", l.NumPieces(), l.TotalLength())
	}
	if got, want := l.Spans(0, 16), []Span{{0, 0, 5}, {1, 0, 3}, {2, 0, 8}}; !reflect.DeepEqual(got, want) {
		t.Errorf("piece 0 spans %v, want %v", got, want)
	}
	if got, want := l.Spans(16, 2), []Span{{2, 8, 2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("piece 1 spans %v, want %v", got, want)
	}
	if f, e := l.PieceFiles(0); f != 0 || e != 2 {
		t.Errorf("PieceFiles(0) = %d,%d", f, e)
	}
	if f, e := l.PieceFiles(1); f != 2 || e != 2 {
		t.Errorf("PieceFiles(1) = %d,%d", f, e)
	}
	if l.FileOffset(0) != 0 || l.FileOffset(1) != 5 || l.FileOffset(2) != 8 {
		t.Errorf("file offsets %d %d %d", l.FileOffset(0), l.FileOffset(1), l.FileOffset(2))
	}
	if f, e := l.FilePieces(2); f != 0 || e != 2 {
		t.Errorf("FilePieces(2) = %d,%d", f, e)
	}
}

func TestLayoutEmptyFiles(t *testing.T) {
	l := mustLayout(t, []File{{Path: "t/e0", Length: 0}, {Path: "t/a", Length: 4}, {Path: "t/e1"}, {Path: "t/b", Length: 4}, {Path: "t/e2"}}, 4)
	if l.NumPieces() != 2 {
		t.Fatalf("pieces %d", l.NumPieces())
	}
	if f, e := l.PieceFiles(0); f != 1 || e != 1 {
		t.Errorf("PieceFiles(0) = %d,%d, want 1,1", f, e)
	}
	if f, e := l.PieceFiles(1); f != 3 || e != 3 {
		t.Errorf("PieceFiles(1) = %d,%d, want 3,3", f, e)
	}
	if got, want := l.Spans(0, 8), []Span{{1, 0, 4}, {3, 0, 4}}; !reflect.DeepEqual(got, want) {
		t.Errorf("spans %v, want %v", got, want)
	}
	if got, want := l.Spans(2, 4), []Span{{1, 2, 2}, {3, 0, 2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("spans %v, want %v", got, want)
	}
	if f, e := l.FilePieces(2); f != e {
		t.Errorf("empty file has pieces [%d,%d)", f, e)
	}
	if l.FileOffset(2) != 4 || l.FileOffset(4) != 8 {
		t.Errorf("empty file offsets %d %d", l.FileOffset(2), l.FileOffset(4))
	}
}

func TestLayoutPieceMultiple(t *testing.T) {
	l := mustLayout(t, []File{{Path: "t/a", Length: 8}, {Path: "t/b", Length: 8}}, 8)
	if l.NumPieces() != 2 || l.PieceSize(0) != 8 || l.PieceSize(1) != 8 {
		t.Fatalf("pieces %d sizes %d %d", l.NumPieces(), l.PieceSize(0), l.PieceSize(1))
	}
	if f, e := l.PieceFiles(1); f != 1 || e != 1 {
		t.Errorf("PieceFiles(1) = %d,%d", f, e)
	}
	if f, e := l.FilePieces(0); f != 0 || e != 1 {
		t.Errorf("FilePieces(0) = %d,%d", f, e)
	}
}

func TestLayoutLastShortPiece(t *testing.T) {
	l := mustLayout(t, []File{{Path: "single", Length: 10}}, 4)
	want := []int64{4, 4, 2}
	if l.NumPieces() != 3 {
		t.Fatalf("pieces %d", l.NumPieces())
	}
	for i, w := range want {
		if l.PieceSize(i) != w {
			t.Errorf("PieceSize(%d) = %d, want %d", i, l.PieceSize(i), w)
		}
	}
	if l.PieceSize(3) != 0 || l.PieceSize(-1) != 0 {
		t.Errorf("out of range sizes %d %d", l.PieceSize(3), l.PieceSize(-1))
	}
	if f, e := l.PieceFiles(3); f != -1 || e != -1 {
		t.Errorf("PieceFiles out of range = %d,%d", f, e)
	}
}

func TestLayoutPadding(t *testing.T) {
	l := mustLayout(t, []File{{Path: "t/a", Length: 5}, {Path: ".pad/3", Length: 3, Padding: true}, {Path: "t/b", Length: 8}}, 8)
	if f, e := l.PieceFiles(0); f != 0 || e != 1 {
		t.Errorf("PieceFiles(0) = %d,%d", f, e)
	}
	if f, e := l.PieceFiles(1); f != 2 || e != 2 {
		t.Errorf("PieceFiles(1) = %d,%d", f, e)
	}
	// Padding paths are never used, so they need not be valid.
	if _, err := NewLayout([]File{{Path: "t/a", Length: 5}, {Path: "", Length: 3, Padding: true}}, 8); err != nil {
		t.Errorf("padding without path rejected: %v", err)
	}
}

func TestLayoutClipping(t *testing.T) {
	l := mustLayout(t, []File{{Path: "t/a", Length: 5}, {Path: "t/b", Length: 5}}, 4)
	cases := []struct {
		off, n int64
		want   []Span
	}{
		{-3, 5, []Span{{0, 0, 2}}},
		{9, 100, []Span{{1, 4, 1}}},
		{10, 1, nil},
		{11, 1, nil},
		{math.MaxInt64 - 1, math.MaxInt64, nil},
		{3, math.MaxInt64, []Span{{0, 3, 2}, {1, 0, 5}}},
		{2, 0, nil},
		{2, -4, nil},
	}
	for _, c := range cases {
		if got := l.Spans(c.off, c.n); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Spans(%d, %d) = %v, want %v", c.off, c.n, got, c.want)
		}
	}
}

// TestLayoutRandom checks Spans against a byte-by-byte model on random
// layouts with empty and padding files.
func TestLayoutRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		var files []File
		var owner []int // owner[g] = file holding byte g
		for i := range 1 + r.IntN(6) {
			n := int64(r.IntN(4)) * int64(r.IntN(9))
			files = append(files, File{Path: "t/f" + string(rune('a'+i)), Length: n, Padding: r.IntN(5) == 0})
			for range n {
				owner = append(owner, i)
			}
		}
		pl := int64(1 + r.IntN(7))
		l := mustLayout(t, files, pl)
		total := int64(len(owner))
		if l.TotalLength() != total || int64(l.NumPieces()) != (total+pl-1)/pl {
			t.Fatalf("%v/%d: total %d pieces %d", files, pl, l.TotalLength(), l.NumPieces())
		}
		for p := 0; p < l.NumPieces(); p++ {
			first, last := l.PieceFiles(p)
			start := int64(p) * pl
			if first != owner[start] || last != owner[start+l.PieceSize(p)-1] {
				t.Fatalf("%v/%d: PieceFiles(%d) = %d,%d", files, pl, p, first, last)
			}
		}
		off := int64(r.IntN(int(total) + 2))
		n := int64(r.IntN(int(total) + 2))
		g := off
		for _, s := range l.Spans(off, n) {
			if s.Length <= 0 {
				t.Fatalf("empty span %v", s)
			}
			for k := range s.Length {
				if owner[g] != s.File || g-l.FileOffset(s.File) != s.Offset+k {
					t.Fatalf("%v/%d: Spans(%d,%d) maps byte %d to %v", files, pl, off, n, g, s)
				}
				g++
			}
		}
		if want := min(off+n, total); g != max(want, off) {
			t.Fatalf("%v: Spans(%d,%d) covers up to %d, want %d", files, off, n, g, want)
		}
	}
}

func TestNewLayoutErrors(t *testing.T) {
	cases := []struct {
		name  string
		files []File
		pl    int64
		want  string
	}{
		{"zero piece length", []File{{Path: "a", Length: 1}}, 0, "piece length 0 is not positive"},
		{"no files", nil, 4, "no files"},
		{"negative length", []File{{Path: "a", Length: -1}}, 4, "file 0 (\"a\"): negative length -1"},
		{"overflow", []File{{Path: "a", Length: math.MaxInt64}, {Path: "b", Length: 1}}, 4, "file 1 (\"b\"): total length overflows"},
		{"too many pieces", []File{{Path: "a", Length: math.MaxInt64}}, 1, "too many"},
		{"duplicate", []File{{Path: "t/a", Length: 1}, {Path: "t/a", Length: 1}}, 4, "file 1 path \"t/a\" duplicates file 0"},
		{"file then dir", []File{{Path: "t/a", Length: 1}, {Path: "t/a/b", Length: 1}}, 4, "file 1 path \"t/a/b\" is under file 0"},
		{"dir then file", []File{{Path: "t/a/b", Length: 1}, {Path: "t/a", Length: 1}}, 4, "file 1 path \"t/a\" is a directory of file 0"},
		{"traversal", []File{{Path: "t/../../x", Length: 1}}, 4, "file 0: storage: bad file path"},
	}
	for _, c := range cases {
		_, err := NewLayout(c.files, c.pl)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}
