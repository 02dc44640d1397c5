package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrBadPath is wrapped by every path rejection, so callers can tell a
// hostile or malformed torrent from an I/O failure.
var ErrBadPath = errors.New("storage: bad file path")

// ValidatePath checks that p, a slash-separated path from a torrent, names
// a location strictly inside the download folder. metainfo already checks
// paths; this is a second line of defence because a single missed case
// would let a torrent overwrite arbitrary files of the user.
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty path", ErrBadPath)
	}
	if i := strings.IndexByte(p, 0); i >= 0 {
		return fmt.Errorf("%w: %q has a NUL byte at offset %d", ErrBadPath, p, i)
	}
	// A backslash is an ordinary character on Unix, but a separator on
	// Windows, where "..\x" would climb out of the folder.
	if i := strings.IndexByte(p, '\\'); i >= 0 {
		return fmt.Errorf("%w: %q has a backslash at offset %d", ErrBadPath, p, i)
	}
	if p[0] == '/' {
		return fmt.Errorf("%w: %q is absolute", ErrBadPath, p)
	}
	comp := 0
	for rest := p; ; comp++ {
		c, tail, more := strings.Cut(rest, "/")
		switch c {
		case "":
			return fmt.Errorf("%w: %q has an empty component at index %d", ErrBadPath, p, comp)
		case ".":
			return fmt.Errorf("%w: %q has a \".\" component at index %d", ErrBadPath, p, comp)
		case "..":
			return fmt.Errorf("%w: %q has a \"..\" component at index %d", ErrBadPath, p, comp)
		}
		if !more {
			break
		}
		rest = tail
	}
	// Catches what is special only on the host OS, such as volume names
	// ("C:") and reserved device names on Windows.
	if !filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("%w: %q is not a local path on this system", ErrBadPath, p)
	}
	return nil
}
