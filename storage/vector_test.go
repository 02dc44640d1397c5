package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// split cuts b into buffers of the given sizes, repeating them, with an
// empty buffer thrown in to check that empty buffers are skipped.
func split(b []byte, sizes ...int) [][]byte {
	var out [][]byte
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		out = append(out, b[:n])
		if i == 1 {
			out = append(out, b[n:n])
		}
		b = b[n:]
	}
	return out
}

// TestVectoredRoundTrip writes and reads regions as lists of buffers, in
// one file and across files, padding and an unwanted file, and compares
// with what ReadAt sees.
func TestVectoredRoundTrip(t *testing.T) {
	l := mustLayout(t, []File{
		{Path: "t/a", Length: 5000},
		{Path: "t/pad", Length: 96, Padding: true},
		{Path: "t/b", Length: 3000},
		{Path: "t/c", Length: 7000},
	}, 1024)
	data := randBytes(21, l.TotalLength())
	copy(data[5000:5096], make([]byte, 96)) // padding reads as zeros
	for _, opts := range []Options{{}, {Wanted: []bool{true, true, false, true}}} {
		d := openDir(t, t.TempDir(), l, opts)
		// Regions: inside a, across a/pad/b, inside c, the rest.
		bounds := []int64{0, 4000, 6000, 9000, 15000, l.TotalLength()}
		for i := 0; i+1 < len(bounds); i++ {
			seg := data[bounds[i]:bounds[i+1]]
			if n, err := WriteVec(d, split(seg, 700, 1, 1500), bounds[i]); err != nil || n != len(seg) {
				t.Fatalf("WriteVec [%d,%d) = %d, %v", bounds[i], bounds[i+1], n, err)
			}
		}
		got := make([]byte, len(data))
		if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("wanted %v: ReadAt after WriteVec differs (err %v)", opts.Wanted, err)
		}
		for i := 0; i+1 < len(bounds); i++ {
			seg := make([]byte, bounds[i+1]-bounds[i])
			if n, err := ReadVec(d, split(seg, 333, 4096), bounds[i]); err != nil || n != len(seg) {
				t.Fatalf("ReadVec [%d,%d) = %d, %v", bounds[i], bounds[i+1], n, err)
			}
			if !bytes.Equal(seg, data[bounds[i]:bounds[i+1]]) {
				t.Fatalf("wanted %v: ReadVec [%d,%d) differs", opts.Wanted, bounds[i], bounds[i+1])
			}
		}
	}
}

// TestVectoredManyBuffers passes more buffers than one preadv or pwritev
// call takes.
func TestVectoredManyBuffers(t *testing.T) {
	const size = 3*maxIov + 17
	l := mustLayout(t, []File{{Path: "f", Length: size}}, 1<<20)
	d := openDir(t, t.TempDir(), l, Options{})
	data := randBytes(5, size)
	if n, err := d.WriteVecAt(split(data, 1), 0); err != nil || n != size {
		t.Fatalf("WriteVecAt = %d, %v", n, err)
	}
	got := make([]byte, size)
	if n, err := d.ReadVecAt(split(got, 1, 2), 0); err != nil || n != size || !bytes.Equal(got, data) {
		t.Fatalf("ReadVecAt = %d, %v, equal %v", n, err, bytes.Equal(got, data))
	}
}

// TestLargeWrites writes more than maxWrite bytes in one WriteVecAt and
// one WriteAt, with buffers larger and smaller than maxWrite, so that the
// calls are cut inside and between buffers.
func TestLargeWrites(t *testing.T) {
	const size = 3*maxWrite + 12345
	l := mustLayout(t, []File{{Path: "f", Length: size}}, 1<<20)
	for _, vec := range []bool{true, false} {
		d := openDir(t, t.TempDir(), l, Options{})
		data := randBytes(7, size)
		var n int
		var err error
		if vec {
			n, err = d.WriteVecAt(split(data, 100000, maxWrite+1, 16384), 0)
		} else {
			n, err = d.WriteAt(data, 0)
		}
		if err != nil || n != size {
			t.Fatalf("vectored %v: write = %d, %v", vec, n, err)
		}
		got := make([]byte, size)
		if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("vectored %v: read back differs (err %v)", vec, err)
		}
	}
}

// TestVectoredErrors checks the errors ReadAt and WriteAt give: a file
// cut short reads as ErrMissing, a write past the end is ErrOutOfRange.
func TestVectoredErrors(t *testing.T) {
	l := mustLayout(t, []File{{Path: "f", Length: 4096}}, 1024)
	dir := t.TempDir()
	d := openDir(t, dir, l, Options{})
	if _, err := d.WriteVecAt([][]byte{make([]byte, 4000), make([]byte, 97)}, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("write past the end: %v, want ErrOutOfRange", err)
	}
	if _, err := d.WriteVecAt([][]byte{randBytes(1, 4096)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "f"), 3000); err != nil {
		t.Fatal(err)
	}
	n, err := d.ReadVecAt([][]byte{make([]byte, 2048), make([]byte, 2048)}, 0)
	if !errors.Is(err, ErrMissing) || n != 3000 {
		t.Errorf("read of a short file = %d, %v; want 3000, ErrMissing", n, err)
	}
	if _, err := d.ReadVecAt([][]byte{make([]byte, 1)}, -1); err == nil {
		t.Error("read at a negative offset: no error")
	}
}

func TestCapBytes(t *testing.T) {
	a, b, c := make([]byte, 100), make([]byte, 200), make([]byte, 300)
	for _, tc := range []struct {
		bufs  [][]byte
		limit int
		want  []int // lengths of the buffers returned
	}{
		{[][]byte{a, b, c}, 1000, []int{100, 200, 300}},
		{[][]byte{a, b, c}, 600, []int{100, 200, 300}},
		{[][]byte{a, b, c}, 599, []int{100, 200}},
		{[][]byte{a, b, c}, 300, []int{100, 200}},
		{[][]byte{a, b, c}, 299, []int{100}},
		{[][]byte{c, a}, 50, []int{50}},
	} {
		got := capBytes(tc.bufs, tc.limit)
		var lens []int
		for _, g := range got {
			lens = append(lens, len(g))
		}
		if !slices.Equal(lens, tc.want) {
			t.Errorf("capBytes(%d bytes limit) = lengths %v, want %v", tc.limit, lens, tc.want)
		}
	}
}
