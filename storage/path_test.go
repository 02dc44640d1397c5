package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidatePathRejects(t *testing.T) {
	cases := []struct{ path, want string }{
		{"", "empty path"},
		{"/etc/passwd", "is absolute"},
		{"..", `"..\" component at index 0`},
		{"t/../../x", `".." component at index 1`},
		{"t/a/..", `".." component at index 2`},
		{"./a", `"." component at index 0`},
		{"t/./a", `"." component at index 1`},
		{"t//a", "empty component at index 1"},
		{"t/a/", "empty component at index 2"},
		{"t/a\x00b", "NUL byte at offset 3"},
		{`t\..\..\x`, "backslash at offset 1"},
	}
	for _, c := range cases {
		err := ValidatePath(c.path)
		if err == nil {
			t.Errorf("%q accepted", c.path)
			continue
		}
		if !errors.Is(err, ErrBadPath) {
			t.Errorf("%q: %v does not wrap ErrBadPath", c.path, err)
		}
		if !strings.Contains(err.Error(), strings.ReplaceAll(c.want, `\"`, `"`)) {
			t.Errorf("%q: error %q, want it to mention %q", c.path, err, c.want)
		}
	}
}

func TestValidatePathAccepts(t *testing.T) {
	for _, p := range []string{"a", "t/a/b.txt", "..a", "a..", "...", ".hidden/x", "t/a b:c", "日本/語"} {
		if err := ValidatePath(p); err != nil {
			t.Errorf("%q rejected: %v", p, err)
		}
	}
}

// FuzzValidatePath checks that no accepted path can name a place outside
// the folder it is joined to.
func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"a", "t/a/b", "..", "a/../b", "/x", "a//b", "./a", "a\\b", "a\x00", "...", "C:x", "a/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePath(p) != nil {
			return
		}
		if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\\") {
			t.Fatalf("accepted %q", p)
		}
		for _, c := range strings.Split(p, "/") {
			if c == "" || c == "." || c == ".." {
				t.Fatalf("accepted %q with component %q", p, c)
			}
		}
		base := filepath.FromSlash("/base/dir")
		joined := filepath.Join(base, filepath.FromSlash(p))
		if !strings.HasPrefix(joined, base+string(filepath.Separator)) {
			t.Fatalf("%q joins to %q, outside %q", p, joined, base)
		}
		if !filepath.IsLocal(filepath.FromSlash(p)) {
			t.Fatalf("accepted non-local %q", p)
		}
	})
}
