package metainfo

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
)

// ValidatePath checks that path components taken from a torrent name a
// file strictly inside the download folder on this operating system. The
// rules: at least one component; no component is empty, ".", "..",
// absolute, or contains '/', '\\' or NUL; on Windows additionally no
// reserved device name (CON, NUL, COM1, ...), no trailing dot or space,
// no character in <>:"|?* and no control character. The error names the
// offending component by index so the caller can point at the field.
func ValidatePath(components []string) error {
	return validatePathOS(runtime.GOOS, components)
}

// validatePathOS is ValidatePath for a given GOOS, so the Windows rules can
// be tested on every platform.
func validatePathOS(goos string, components []string) error {
	if len(components) == 0 {
		return errors.New("empty path")
	}
	for i, c := range components {
		if err := validateComponent(goos, c); err != nil {
			return fmt.Errorf("component %d %q: %w", i, c, err)
		}
	}
	return nil
}

func validateComponent(goos, c string) error {
	switch {
	case c == "":
		return errors.New("empty name")
	case c == "." || c == "..":
		return errors.New("relative directory reference not allowed")
	case filepath.IsAbs(c) || strings.HasPrefix(c, "/"):
		return errors.New("absolute path not allowed")
	case strings.ContainsRune(c, '/'):
		return errors.New("contains '/'")
	case strings.ContainsRune(c, '\\'):
		return errors.New("contains '\\'")
	case strings.ContainsRune(c, 0):
		return errors.New("contains NUL byte")
	}
	if goos == "windows" {
		return validateWindowsComponent(c)
	}
	return nil
}

// isWindowsReserved reports the device names Windows resolves in every
// folder, with or without an extension.
func isWindowsReserved(base string) bool {
	switch strings.ToUpper(base) {
	case "CON", "PRN", "AUX", "NUL",
		"COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		return true
	}
	return false
}

func validateWindowsComponent(c string) error {
	if strings.HasSuffix(c, ".") || strings.HasSuffix(c, " ") {
		return errors.New("trailing dot or space not allowed on Windows")
	}
	for _, r := range c {
		if r < 0x20 || strings.ContainsRune(`<>:"|?*`, r) {
			return fmt.Errorf("character %q not allowed on Windows", r)
		}
	}
	base, _, _ := strings.Cut(c, ".")
	if isWindowsReserved(strings.TrimRight(base, " ")) {
		return errors.New("reserved device name on Windows")
	}
	return nil
}
