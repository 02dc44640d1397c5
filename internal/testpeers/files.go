package testpeers

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// RandomFile writes size bytes of pseudo-random content to path, creating
// parent directories. The content depends only on the file's base name and
// size, so a test gets the same data on every run (and so the same
// info-hash) while files with different names differ.
func RandomFile(t testing.TB, path string, size int64) {
	t.Helper()
	if size < 0 {
		t.Fatalf("RandomFile %s: negative size %d", path, size)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("RandomFile: %v", err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("RandomFile: %v", err)
	}
	seed := sha256.Sum256([]byte(filepath.Base(path)))
	_, err = io.CopyN(f, rand.NewChaCha8(seed), size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("RandomFile %s: %v", path, err)
	}
}

// SHA256File returns the hex SHA-256 of the file at path.
func SHA256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("SHA256File: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("SHA256File %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SameTree fails the test unless a and b hold the same regular files with
// byte-identical contents and the same directories. Either may be a single
// regular file, as a single-file torrent downloads one.
func SameTree(t testing.TB, a, b string) {
	t.Helper()
	if err := CompareTrees(a, b); err != nil {
		t.Fatalf("SameTree: %v", err)
	}
}

// CompareTrees is SameTree's check, for callers that want the error: it
// names the first path that is missing, of another kind, or different, and
// for different contents the first differing byte offset.
func CompareTrees(a, b string) error {
	ta, err := listTree(a)
	if err != nil {
		return err
	}
	tb, err := listTree(b)
	if err != nil {
		return err
	}
	for _, rel := range sortedKeys(ta) {
		if _, ok := tb[rel]; !ok {
			return fmt.Errorf("%s exists but %s does not", filepath.Join(a, rel), filepath.Join(b, rel))
		}
	}
	for _, rel := range sortedKeys(tb) {
		ea, ok := ta[rel]
		if !ok {
			return fmt.Errorf("%s exists but %s does not", filepath.Join(b, rel), filepath.Join(a, rel))
		}
		eb := tb[rel]
		pa, pb := filepath.Join(a, rel), filepath.Join(b, rel)
		if ea.IsDir() != eb.IsDir() || ea.Type().IsRegular() != eb.Type().IsRegular() {
			return fmt.Errorf("%s is a %v but %s is a %v", pa, ea.Type(), pb, eb.Type())
		}
		if ea.Type().IsRegular() {
			if err := sameFile(pa, pb); err != nil {
				return err
			}
		}
	}
	return nil
}

// listTree maps every path under root (relative, "." for root itself) to
// its entry. Only directories and regular files are allowed.
func listTree(root string) (map[string]fs.DirEntry, error) {
	entries := make(map[string]fs.DirEntry)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s: unsupported file type %v", path, d.Type())
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		entries[rel] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	return entries, nil
}

func sortedKeys(m map[string]fs.DirEntry) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sameFile compares two regular files by streaming both.
func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ra, rb := bufio.NewReaderSize(fa, 1<<20), bufio.NewReaderSize(fb, 1<<20)
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if errA != nil && !isEOF(errA) {
			return fmt.Errorf("read %s: %w", a, errA)
		}
		if errB != nil && !isEOF(errB) {
			return fmt.Errorf("read %s: %w", b, errB)
		}
		n := min(na, nb)
		if i := firstDiff(bufA[:n], bufB[:n]); i >= 0 {
			return fmt.Errorf("%s and %s differ at byte %d", a, b, off+int64(i))
		}
		off += int64(n)
		if na != nb {
			return fmt.Errorf("%s and %s differ in size: one ends at byte %d", a, b, off)
		}
		if isEOF(errA) {
			return nil
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// firstDiff returns the index of the first byte where a and b (of equal
// length) differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
