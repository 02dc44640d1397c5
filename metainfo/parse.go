package metainfo

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sowerbt/sower/bencode"
)

// maxDepth bounds bencode nesting. A v1 torrent needs 5 levels (top, info,
// files, file, path); hybrid torrents nest their v2 "file tree" one level
// per folder, so the bound leaves room for deep folder trees while still
// stopping stack-exhausting input.
const maxDepth = 128

// decodeOptions are the lenient-but-bounded settings for torrent input:
// unsorted keys are accepted because old creators wrote them.
func decodeOptions() bencode.DecodeOptions {
	return bencode.DecodeOptions{AllowUnsortedKeys: true, MaxDepth: maxDepth}
}

// Load reads and parses a .torrent file, refusing files larger than
// MaxFileSize before reading them whole.
func Load(path string) (*MetaInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open torrent: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than the %d MiB limit for torrent files", path, MaxFileSize>>20)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse decodes and validates a .torrent file. Errors name the offending
// field, e.g. "info.files[3].path: component 1 \"..\": ...".
func Parse(data []byte) (*MetaInfo, error) {
	if len(data) == 0 {
		return nil, errors.New("empty torrent file")
	}
	opts := decodeOptions()
	var top any
	if err := opts.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("decode torrent: %w", err)
	}
	d, ok := top.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("top level: want dictionary, got %s", typeName(top))
	}
	infoVal, ok := d["info"]
	if !ok {
		return nil, errors.New("info: missing")
	}
	infoDict, ok := infoVal.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("info: want dictionary, got %s", typeName(infoVal))
	}
	var raw struct {
		Info bencode.RawMessage `bencode:"info"`
	}
	if err := opts.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decode torrent: %w", err)
	}
	if len(raw.Info) == 0 {
		return nil, errors.New("info: missing")
	}
	info, err := parseInfoDict(infoDict)
	if err != nil {
		return nil, err
	}
	m := &MetaInfo{
		Info:      *info,
		InfoBytes: raw.Info,
		InfoHash:  sha1.Sum(raw.Info),
	}
	if err := parseOuter(d, m); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseInfo decodes and validates a bare info dictionary, such as metadata
// fetched from peers (BEP 9), with the same rules as Parse. The caller
// checks the bytes against the expected info-hash.
func ParseInfo(infoBytes []byte) (*Info, error) {
	if len(infoBytes) == 0 {
		return nil, errors.New("info: empty")
	}
	var v any
	if err := decodeOptions().Unmarshal(infoBytes, &v); err != nil {
		return nil, fmt.Errorf("decode info: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("info: want dictionary, got %s", typeName(v))
	}
	return parseInfoDict(d)
}

func parseOuter(d map[string]any, m *MetaInfo) error {
	var err error
	if m.Announce, _, err = getString(d, "announce", "announce"); err != nil {
		return err
	}
	if v, ok := d["announce-list"]; ok {
		tiers, ok := v.([]any)
		if !ok {
			return fmt.Errorf("announce-list: want list, got %s", typeName(v))
		}
		for i, t := range tiers {
			tier, err := stringList(t, fmt.Sprintf("announce-list[%d]", i))
			if err != nil {
				return err
			}
			m.AnnounceList = append(m.AnnounceList, tier)
		}
	}
	if v, ok := d["url-list"]; ok {
		// BEP 19 allows a single URL as a string as well as a list.
		if s, isStr := v.(string); isStr {
			if s != "" {
				m.URLList = []string{s}
			}
		} else {
			l, err := stringList(v, "url-list")
			if err != nil {
				return err
			}
			m.URLList = dropEmpty(l)
		}
	}
	if v, ok := d["httpseeds"]; ok {
		l, err := stringList(v, "httpseeds")
		if err != nil {
			return err
		}
		m.HTTPSeeds = dropEmpty(l)
	}
	if v, ok := d["nodes"]; ok {
		if m.Nodes, err = parseNodes(v); err != nil {
			return err
		}
	}
	if m.Comment, _, err = getString(d, "comment", "comment"); err != nil {
		return err
	}
	if m.CreatedBy, _, err = getString(d, "created by", "created by"); err != nil {
		return err
	}
	date, ok, err := getInt(d, "creation date", "creation date")
	if err != nil {
		return err
	}
	if ok {
		m.CreationDate = time.Unix(date, 0).UTC()
	}
	return nil
}

// parseNodes reads the BEP 5 "nodes" list of [host, port] pairs.
func parseNodes(v any) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("nodes: want list, got %s", typeName(v))
	}
	var out []string
	for i, e := range l {
		field := fmt.Sprintf("nodes[%d]", i)
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("%s: want [host, port] list", field)
		}
		host, ok := pair[0].(string)
		if !ok || host == "" {
			return nil, fmt.Errorf("%s: host: want non-empty string", field)
		}
		port, ok := pair[1].(int64)
		if !ok || port < 1 || port > 65535 {
			return nil, fmt.Errorf("%s: port: want integer 1..65535", field)
		}
		hp := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, fmt.Errorf("%s: host %q: not a host name or address", field, host)
		}
		out = append(out, hp)
	}
	return out, nil
}

func parseInfoDict(d map[string]any) (*Info, error) {
	if _, hasPieces := d["pieces"]; !hasPieces {
		_, hasVersion := d["meta version"]
		_, hasTree := d["file tree"]
		if hasVersion || hasTree {
			return nil, ErrV2Only
		}
	}
	info := &Info{}
	name, ok, err := getString(d, "name.utf-8", "info.name.utf-8")
	if err != nil {
		return nil, err
	}
	nameField := "info.name.utf-8"
	if !ok {
		nameField = "info.name"
		if name, ok, err = getString(d, "name", nameField); err != nil {
			return nil, err
		}
		if !ok {
			return nil, errors.New("info.name: missing")
		}
	}
	if err := ValidatePath([]string{name}); err != nil {
		return nil, fmt.Errorf("%s: %w", nameField, err)
	}
	info.Name = name

	pl, ok, err := getInt(d, "piece length", "info.piece length")
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		return nil, errors.New("info.piece length: missing")
	case pl <= 0:
		return nil, fmt.Errorf("info.piece length: must be positive, got %d", pl)
	case pl > MaxPieceLength:
		return nil, fmt.Errorf("info.piece length: %d exceeds the %d MiB limit", pl, MaxPieceLength>>20)
	}
	info.PieceLength = pl

	pieces, ok, err := getString(d, "pieces", "info.pieces")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("info.pieces: missing")
	}
	if len(pieces)%20 != 0 {
		return nil, fmt.Errorf("info.pieces: length %d is not a multiple of 20", len(pieces))
	}

	if p, ok := d["private"].(int64); ok && p == 1 {
		info.Private = true
	}

	total, err := parseLayout(d, info)
	if err != nil {
		return nil, err
	}
	if total == 0 {
		return nil, errors.New("info: torrent has no data (total length 0)")
	}
	want := total / pl
	if total%pl != 0 {
		want++
	}
	if got := int64(len(pieces) / 20); got != want {
		return nil, fmt.Errorf("info.pieces: %d hashes, but total length %d with piece length %d needs %d", got, total, pl, want)
	}
	info.Pieces = make([][20]byte, want)
	for i := range info.Pieces {
		copy(info.Pieces[i][:], pieces[i*20:])
	}
	return info, nil
}

// parseLayout fills Length or Files and returns the total length.
func parseLayout(d map[string]any, info *Info) (int64, error) {
	_, hasLength := d["length"]
	filesVal, hasFiles := d["files"]
	switch {
	case hasLength && hasFiles:
		return 0, errors.New("info: has both length (single-file) and files (multi-file)")
	case !hasLength && !hasFiles:
		return 0, errors.New("info: has neither length (single-file) nor files (multi-file)")
	case hasLength:
		n, _, err := getInt(d, "length", "info.length")
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return 0, fmt.Errorf("info.length: negative (%d)", n)
		}
		info.Length = n
		return n, nil
	}
	list, ok := filesVal.([]any)
	if !ok {
		return 0, fmt.Errorf("info.files: want list, got %s", typeName(filesVal))
	}
	if len(list) == 0 {
		return 0, errors.New("info.files: empty list")
	}
	info.Files = make([]File, 0, len(list))
	var total int64
	for i, e := range list {
		f, err := parseFile(e, fmt.Sprintf("info.files[%d]", i))
		if err != nil {
			return 0, err
		}
		if f.Length > math.MaxInt64-total {
			return 0, fmt.Errorf("info.files[%d].length: total size overflows", i)
		}
		total += f.Length
		info.Files = append(info.Files, f)
	}
	if err := checkCollisions(info.Files); err != nil {
		return 0, err
	}
	return total, nil
}

func parseFile(v any, field string) (File, error) {
	d, ok := v.(map[string]any)
	if !ok {
		return File{}, fmt.Errorf("%s: want dictionary, got %s", field, typeName(v))
	}
	var f File
	var err error
	if f.Attr, _, err = getString(d, "attr", field+".attr"); err != nil {
		return File{}, err
	}
	n, ok, err := getInt(d, "length", field+".length")
	if err != nil {
		return File{}, err
	}
	// BEP 47 lets symlink entries omit their (zero) length.
	if !ok && !strings.Contains(f.Attr, "l") {
		return File{}, fmt.Errorf("%s.length: missing", field)
	}
	if n < 0 {
		return File{}, fmt.Errorf("%s.length: negative (%d)", field, n)
	}
	f.Length = n

	pathField := field + ".path.utf-8"
	pv, ok := d["path.utf-8"]
	if !ok {
		pathField = field + ".path"
		pv, ok = d["path"]
	}
	if !ok {
		// BEP 47 lets padding files omit their path; give them the
		// recommended one so every entry has a name.
		if f.IsPadding() {
			f.Path = []string{".pad", strconv.FormatInt(n, 10)}
			return f, nil
		}
		return File{}, fmt.Errorf("%s.path: missing", field)
	}
	if f.Path, err = stringList(pv, pathField); err != nil {
		return File{}, err
	}
	if err := ValidatePath(f.Path); err != nil {
		return File{}, fmt.Errorf("%s: %w", pathField, err)
	}
	return f, nil
}

// checkCollisions rejects two files with the same path, or a file whose
// path is also used as a folder by another file: either would make one
// file overwrite another on disk. Padding files are exempt since they
// share ".pad/N" names by design and are never written.
func checkCollisions(files []File) error {
	seen := make(map[string]int, len(files))
	dirs := make(map[string]int)
	for i, f := range files {
		if f.IsPadding() {
			continue
		}
		p := strings.Join(f.Path, "/")
		if j, ok := seen[p]; ok {
			return fmt.Errorf("info.files[%d].path: %q duplicates info.files[%d]", i, p, j)
		}
		if j, ok := dirs[p]; ok {
			return fmt.Errorf("info.files[%d].path: %q is a folder of info.files[%d]", i, p, j)
		}
		for k := 1; k < len(f.Path); k++ {
			dir := strings.Join(f.Path[:k], "/")
			if j, ok := seen[dir]; ok {
				return fmt.Errorf("info.files[%d].path: folder %q is the file info.files[%d]", i, dir, j)
			}
			if _, ok := dirs[dir]; !ok {
				dirs[dir] = i
			}
		}
		seen[p] = i
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "dictionary"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

// getString returns d[key] if it is a string; ok is false if absent.
func getString(d map[string]any, key, field string) (s string, ok bool, err error) {
	v, ok := d[key]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, fmt.Errorf("%s: want string, got %s", field, typeName(v))
	}
	return s, true, nil
}

// getInt returns d[key] if it is an integer; ok is false if absent.
func getInt(d map[string]any, key, field string) (n int64, ok bool, err error) {
	v, ok := d[key]
	if !ok {
		return 0, false, nil
	}
	n, isInt := v.(int64)
	if !isInt {
		return 0, false, fmt.Errorf("%s: want integer, got %s", field, typeName(v))
	}
	return n, true, nil
}

func stringList(v any, field string) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want list, got %s", field, typeName(v))
	}
	out := make([]string, len(l))
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: want string, got %s", field, i, typeName(e))
		}
		out[i] = s
	}
	return out, nil
}

func dropEmpty(l []string) []string {
	var out []string
	for _, s := range l {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
