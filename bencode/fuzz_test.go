package bencode

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// fuzzSeeds are inputs worth starting from: real message shapes, edge
// values and each kind of rejection.
var fuzzSeeds = []string{
	"i0e", "i-9223372036854775808e", "i9223372036854775807e", "0:", "le", "de",
	"4:spam", "l4:spam4:eggse", "d3:cow3:moo4:spam4:eggse",
	"d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e",
	"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
	"d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei31235e1:pi6881e1:v13:\xc2\xb5Torrent 1.2e",
	"d8:announce22:http://t.example/ann4:infod6:lengthi1024e4:name5:a.txt12:piece lengthi16384e6:pieces20:\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13ee",
	"d4:infod4:name1:a6:lengthi5eee",
	"i03e", "i-0e", "ie", "03:abc", "99999999999:", "d1:ai1e1:ai2ee", "d1:bi1e1:ai2ee",
	"di1ei2ee", "i1ei2e", "li1e", strings.Repeat("l", 64) + strings.Repeat("e", 64),
}

// checkError verifies that err is one of the documented error types with
// an offset inside the input.
func checkError(t *testing.T, err error, n int) {
	t.Helper()
	var se *SyntaxError
	var te *UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		if se.Offset < 0 || se.Offset > int64(n) {
			t.Fatalf("syntax error offset %d outside input of %d bytes: %v", se.Offset, n, err)
		}
	case errors.As(err, &te):
		if te.Offset < 0 || te.Offset >= int64(n) {
			t.Fatalf("type error offset %d outside input of %d bytes: %v", te.Offset, n, err)
		}
	default:
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Strict mode: valid input is canonical, so it re-encodes to
		// exactly the same bytes.
		var v any
		err := Unmarshal(data, &v)
		if err != nil {
			checkError(t, err, len(data))
		} else {
			out, err := Marshal(v)
			if err != nil {
				t.Fatalf("Marshal of decoded %#v: %v", v, err)
			}
			if !bytes.Equal(out, data) {
				t.Fatalf("strict input %q re-encodes as %q", data, out)
			}
			var v2 any
			if err := Unmarshal(out, &v2); err != nil || !reflect.DeepEqual(v, v2) {
				t.Fatalf("decoding the encoding: %#v, %v; want %#v", v2, err, v)
			}
		}
		var raw RawMessage
		if rawErr := Unmarshal(data, &raw); (rawErr == nil) != (err == nil) {
			t.Fatalf("RawMessage error %v disagrees with any error %v", rawErr, err)
		} else if rawErr == nil && !bytes.Equal(raw, data) {
			t.Fatalf("RawMessage %q, want %q", raw, data)
		}

		// Lenient mode accepts a superset, keeps raw bytes exactly, and
		// its values encode canonically.
		lenient := DecodeOptions{AllowUnsortedKeys: true}
		var u any
		uerr := lenient.Unmarshal(data, &u)
		if uerr != nil {
			checkError(t, uerr, len(data))
			if err == nil {
				t.Fatalf("lenient mode rejects strictly valid input: %v", uerr)
			}
		} else {
			out, err := Marshal(u)
			if err != nil {
				t.Fatalf("Marshal of leniently decoded %#v: %v", u, err)
			}
			var u2 any
			if err := Unmarshal(out, &u2); err != nil || !reflect.DeepEqual(u, u2) {
				t.Fatalf("decoding the encoding %q: %#v, %v; want %#v", out, u2, err, u)
			}
			var r RawMessage
			if err := lenient.Unmarshal(data, &r); err != nil || !bytes.Equal(r, data) {
				t.Fatalf("lenient RawMessage %q, %v", r, err)
			}
		}

		// The stream decoder agrees with Unmarshal on the first value.
		dec := NewDecoder(bytes.NewReader(data))
		var s any
		serr := dec.Decode(&s)
		switch {
		case err == nil:
			if serr != nil || !reflect.DeepEqual(s, v) {
				t.Fatalf("Decoder: %#v, %v; Unmarshal: %#v", s, serr, v)
			}
			if e := dec.Decode(&s); e != io.EOF {
				t.Fatalf("Decoder after the only value: %v", e)
			}
		case serr == nil:
			// Only trailing data can make Unmarshal fail where the
			// first Decode succeeds.
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset != dec.InputOffset() || !strings.Contains(se.Msg, "trailing") {
				t.Fatalf("Decoder accepted a value Unmarshal rejects with %v", err)
			}
		case !errors.Is(serr, io.EOF):
			checkError(t, serr, len(data))
		}

		// Splitting the input into one-byte reads changes nothing.
		if serr == nil || !errors.Is(serr, io.EOF) {
			dec1 := NewDecoder(iotest.OneByteReader(bytes.NewReader(data)))
			var s1 any
			serr1 := dec1.Decode(&s1)
			if (serr1 == nil) != (serr == nil) || (serr != nil && serr1.Error() != serr.Error()) || !reflect.DeepEqual(s, s1) {
				t.Fatalf("one-byte reads: %#v, %v; whole reads: %#v, %v", s1, serr1, s, serr)
			}
		}

		// Typed decoding must fail cleanly too.
		var tor benchTorrent
		if err := Unmarshal(data, &tor); err != nil {
			checkError(t, err, len(data))
		}
		var typed struct {
			A []int8          `bencode:"a"`
			B [2]byte         `bencode:"b"`
			M map[string]bool `bencode:"m"`
			P *uint16         `bencode:"p"`
		}
		if err := lenient.Unmarshal(data, &typed); err != nil {
			checkError(t, err, len(data))
		}
	})
}

// TestFuzzCorpus checks that the committed seed corpus is what its file
// names claim: well-formed messages decode (the old creator's one only
// leniently), and the others are rejected.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 10 {
		t.Fatalf("only %d corpus files", len(entries))
	}
	invalid := map[string]bool{
		"too_deep": true, "leading_zero": true, "negative_zero": true, "huge_length": true,
		"duplicate_key": true, "trailing": true, "truncated": true,
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		header, rest, _ := strings.Cut(string(b), "\n")
		lit, ok := strings.CutPrefix(strings.TrimSpace(rest), "[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		if header != "go test fuzz v1" || !ok || !ok2 {
			t.Fatalf("%s: not a corpus file", e.Name())
		}
		data, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		var v any
		strictErr := Unmarshal([]byte(data), &v)
		lenientErr := DecodeOptions{AllowUnsortedKeys: true}.Unmarshal([]byte(data), &v)
		switch {
		case invalid[e.Name()]:
			if lenientErr == nil {
				t.Errorf("%s: accepted", e.Name())
			}
		case strings.Contains(e.Name(), "unsorted"):
			if strictErr == nil || lenientErr != nil {
				t.Errorf("%s: strict %v, lenient %v", e.Name(), strictErr, lenientErr)
			}
		case strictErr != nil:
			t.Errorf("%s: %v", e.Name(), strictErr)
		}
	}
}
