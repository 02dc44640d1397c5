package metainfo

import (
	"crypto/sha1"
	"fmt"
	"strings"
)

// Hand-written bencode, so tests can build input the encoder would never
// produce: unsorted keys, wrong types, hostile values.

func bstr(s string) string { return fmt.Sprintf("%d:%s", len(s), s) }

func bint(n int64) string { return fmt.Sprintf("i%de", n) }

func blist(items ...string) string { return "l" + strings.Join(items, "") + "e" }

// bdict writes key/value pairs in the order given (not sorted).
func bdict(kv ...string) string {
	var b strings.Builder
	b.WriteString("d")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(bstr(kv[i]))
		b.WriteString(kv[i+1])
	}
	b.WriteString("e")
	return b.String()
}

// piecesFor returns the concatenated piece hashes of data.
func piecesFor(data []byte, pl int) string {
	var b strings.Builder
	for off := 0; off < len(data); off += pl {
		h := sha1.Sum(data[off:min(off+pl, len(data))])
		b.Write(h[:])
	}
	return b.String()
}

// fakePieces returns n distinct dummy piece hashes.
func fakePieces(n int) string {
	var b strings.Builder
	for i := range n {
		h := sha1.Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		b.Write(h[:])
	}
	return b.String()
}

// singleInfo is a valid single-file info dict of length bytes.
func singleInfo(name string, length, pl int64) string {
	n := (length + pl - 1) / pl
	return bdict("length", bint(length), "name", bstr(name), "piece length", bint(pl), "pieces", bstr(fakePieces(int(n))))
}

// fileEntry is one entry of a files list.
func fileEntry(length int64, path ...string) string {
	var comps []string
	for _, p := range path {
		comps = append(comps, bstr(p))
	}
	return bdict("length", bint(length), "path", blist(comps...))
}
