package testpeers

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Limits on what these helpers read or make: test torrents are small.
const (
	maxTorrentSize  = 16 << 20
	maxBencodeDepth = 256
	mktorrentWait   = 2 * time.Minute
)

// Mktorrent makes a .torrent of path (a file or a directory) with the real
// mktorrent program and returns where it wrote it, in a fresh t.TempDir.
// announce may be empty for a torrent without trackers. pieceLen must be a
// power of two from 32 KiB to 256 MiB, or 0 for mktorrent's default
// (256 KiB). The torrent is public and carries no creation date, so the
// same content always gives the same file and info-hash.
func Mktorrent(t testing.TB, path, announce string, pieceLen int64) string {
	t.Helper()
	prog := needProgram(t, "mktorrent", "mktorrent")
	args := []string{"-d"}
	if pieceLen != 0 {
		if pieceLen < 32<<10 || pieceLen > 256<<20 || pieceLen&(pieceLen-1) != 0 {
			t.Fatalf("Mktorrent: piece length %d is not a power of two from 32 KiB to 256 MiB", pieceLen)
		}
		args = append(args, "-l", strconv.Itoa(bits.TrailingZeros64(uint64(pieceLen))))
	}
	if announce != "" {
		args = append(args, "-a", announce)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path)+".torrent")
	args = append(args, "-o", out, path)

	ctx, cancel := context.WithTimeout(context.Background(), mktorrentWait)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, prog, args...).CombinedOutput(); err != nil {
		t.Fatalf("Mktorrent %s: mktorrent %v: %v\n%s", path, args, err, msg)
	}
	return out
}

// InfoHash returns the hex (lower case) v1 info-hash of the .torrent at path:
// the SHA-1 of its bencoded info dictionary, exactly as written.
func InfoHash(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("InfoHash: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTorrentSize+1))
	if err != nil {
		t.Fatalf("InfoHash: read %s: %v", path, err)
	}
	if len(data) > maxTorrentSize {
		t.Fatalf("InfoHash: %s is larger than %d bytes", path, maxTorrentSize)
	}
	info, err := infoDict(data)
	if err != nil {
		t.Fatalf("InfoHash: %s: %v", path, err)
	}
	sum := sha1.Sum(info)
	return hex.EncodeToString(sum[:])
}

// infoDict returns the raw bytes of the "info" value of the bencoded
// dictionary that must make up all of data.
func infoDict(data []byte) ([]byte, error) {
	if len(data) == 0 || data[0] != 'd' {
		return nil, fmt.Errorf("offset 0: metainfo is not a bencoded dictionary")
	}
	var info []byte
	pos := 1
	for {
		if pos >= len(data) {
			return nil, fmt.Errorf("offset %d: unterminated dictionary", pos)
		}
		if data[pos] == 'e' {
			pos++
			break
		}
		keyStart := pos
		end, err := skipValue(data, pos, 1)
		if err != nil {
			return nil, err
		}
		if data[keyStart] < '0' || data[keyStart] > '9' {
			return nil, fmt.Errorf("offset %d: dictionary key is not a string", keyStart)
		}
		key := data[keyStart:end]
		pos = end
		valStart := pos
		if pos >= len(data) {
			return nil, fmt.Errorf("offset %d: dictionary key without value", pos)
		}
		if pos, err = skipValue(data, pos, 1); err != nil {
			return nil, err
		}
		if string(key) == "4:info" {
			if data[valStart] != 'd' {
				return nil, fmt.Errorf("offset %d: info is not a dictionary", valStart)
			}
			info = data[valStart:pos]
		}
	}
	if pos != len(data) {
		return nil, fmt.Errorf("offset %d: trailing data after metainfo", pos)
	}
	if info == nil {
		return nil, fmt.Errorf("no info dictionary")
	}
	return info, nil
}

// skipValue returns the offset just past the bencoded value at data[pos].
func skipValue(data []byte, pos, depth int) (int, error) {
	if depth > maxBencodeDepth {
		return 0, fmt.Errorf("offset %d: nested deeper than %d", pos, maxBencodeDepth)
	}
	if pos >= len(data) {
		return 0, fmt.Errorf("offset %d: unexpected end of data", pos)
	}
	switch c := data[pos]; {
	case c == 'i':
		end := pos + 1
		for end < len(data) && data[end] != 'e' {
			end++
		}
		if end >= len(data) {
			return 0, fmt.Errorf("offset %d: unterminated integer", pos)
		}
		if _, err := strconv.ParseInt(string(data[pos+1:end]), 10, 64); err != nil {
			return 0, fmt.Errorf("offset %d: bad integer %q", pos, data[pos+1:end])
		}
		return end + 1, nil
	case c == 'l' || c == 'd':
		start := pos
		pos++
		for {
			if pos >= len(data) {
				return 0, fmt.Errorf("offset %d: unterminated list or dictionary", start)
			}
			if data[pos] == 'e' {
				return pos + 1, nil
			}
			next, err := skipValue(data, pos, depth+1)
			if err != nil {
				return 0, err
			}
			pos = next
		}
	case c >= '0' && c <= '9':
		colon := pos
		for colon < len(data) && colon-pos <= 10 && data[colon] != ':' {
			colon++
		}
		if colon >= len(data) || data[colon] != ':' {
			return 0, fmt.Errorf("offset %d: bad string length", pos)
		}
		n, err := strconv.Atoi(string(data[pos:colon]))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("offset %d: bad string length %q", pos, data[pos:colon])
		}
		if n > len(data)-colon-1 {
			return 0, fmt.Errorf("offset %d: string of %d bytes runs past the end", pos, n)
		}
		return colon + 1 + n, nil
	default:
		return 0, fmt.Errorf("offset %d: unexpected byte %q", pos, c)
	}
}
