package bencode

import (
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

// wantSyntax checks that err is a *SyntaxError at off whose message
// contains msg.
func wantSyntax(t *testing.T, err error, off int64, msg string) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("got error %v (%T), want *SyntaxError", err, err)
	}
	if se.Offset != off || !strings.Contains(se.Msg, msg) {
		t.Fatalf("got %q, want offset %d and message containing %q", err, off, msg)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	deep := strings.Repeat("l", 65) + strings.Repeat("e", 65)
	tests := []struct {
		name, in string
		off      int64
		msg      string
		eof      bool // the error must wrap io.ErrUnexpectedEOF
	}{
		{"leading zero int", "i03e", 1, "leading zero in integer", false},
		{"double zero int", "i00e", 1, "leading zero in integer", false},
		{"leading zero negative", "i-03e", 2, "leading zero in integer", false},
		{"negative zero", "i-0e", 1, "negative zero", false},
		{"empty int", "ie", 1, "empty integer", false},
		{"minus only", "i-e", 2, "no digits after '-'", false},
		{"int overflow", "i9223372036854775808e", 0, "overflows int64", false},
		{"int underflow", "i-9223372036854775809e", 0, "overflows int64", false},
		{"huge int", "i" + strings.Repeat("9", 100) + "e", 0, "overflows int64", false},
		{"plus sign", "i+1e", 1, `invalid byte '+' in integer`, false},
		{"double minus", "i--1e", 2, `invalid byte '-' in integer`, false},
		{"decimal point", "i1.5e", 2, `invalid byte '.' in integer`, false},
		{"space in int", "i 1e", 1, `invalid byte ' ' in integer`, false},
		{"leading zero string", "03:abc", 0, "leading zero in string length", false},
		{"zero zero string", "00:", 0, "leading zero in string length", false},
		{"bad length byte", "1a:", 1, `invalid byte 'a' in string length`, false},
		{"negative length", "-1:a", 0, `invalid byte '-' at start of value`, false},
		{"huge length", "99999999999:", 0, "string length exceeds", true},
		{"huge length in list", "l99999999999999999999999999:abce", 1, "string length exceeds", true},
		{"length past end", "5:abc", 0, "string length 5 exceeds the 3 remaining bytes", true},
		{"duplicate key", "d1:ai1e1:ai2ee", 7, `duplicate dict key "a"`, false},
		{"unsorted keys", "d1:bi1e1:ai2ee", 7, `dict key "a" is not sorted after "b"`, false},
		{"prefix sorts first", "d2:aai1e1:ai2ee", 8, `not sorted`, false},
		{"unsorted third key", "d1:a0:1:c0:1:b0:e", 11, `dict key "b" is not sorted`, false},
		{"unsorted nested", "d1:ad1:bi1e1:ai1eee", 11, `dict key "a" is not sorted`, false},
		{"bytewise order", "d1:\xff0:1:z0:e", 6, "not sorted", false},
		{"int key", "di1ei2ee", 1, "dict key must be a byte string, found integer", false},
		{"list key", "dli1eei2ee", 1, "found list", false},
		{"dict key", "ddei1ee", 1, "found dict", false},
		{"missing value", "d1:ae", 4, `missing value for dict key "a"`, false},
		{"trailing int", "i1ei2e", 3, "trailing data", false},
		{"trailing space", "le ", 2, "trailing data", false},
		{"trailing byte", "0:x", 2, "trailing data", false},
		{"empty input", "", 0, "unexpected end of input", true},
		{"truncated int", "i12", 3, "unexpected end of input in integer", true},
		{"truncated list", "l", 1, "unexpected end of input in list", true},
		{"truncated list elem", "li1e", 4, "unexpected end of input in list", true},
		{"truncated dict", "d", 1, "unexpected end of input in dict", true},
		{"truncated after key", "d1:a", 4, "unexpected end of input after dict key", true},
		{"truncated length", "1", 1, "unexpected end of input in string length", true},
		{"truncated string", "3:ab", 0, "exceeds the 2 remaining bytes", true},
		{"stray e", "e", 0, "unexpected 'e'", false},
		{"bad start", "x", 0, `invalid byte 'x' at start of value`, false},
		{"bad elem", "l-e", 1, `invalid byte '-'`, false},
		{"too deep", deep, 64, "nesting deeper than 64 levels", false},
		{"too deep dict", strings.Repeat("d1:a", 65) + "i1e" + strings.Repeat("e", 65), 64 * 4, "nesting deeper than 64", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := Unmarshal([]byte(tt.in), &v)
			wantSyntax(t, err, tt.off, tt.msg)
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.eof {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v", got, tt.eof)
			}
			// Decoding into a typed value, skipping, and RawMessage must
			// reject the same input at the same place.
			var s struct{}
			wantSyntax(t, Unmarshal([]byte(tt.in), &s), tt.off, tt.msg)
			var raw RawMessage
			wantSyntax(t, Unmarshal([]byte(tt.in), &raw), tt.off, tt.msg)
		})
	}
}

func TestUnmarshalAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"i0e", int64(0)},
		{"i-1e", int64(-1)},
		{"i9223372036854775807e", int64(math.MaxInt64)},
		{"i-9223372036854775808e", int64(math.MinInt64)},
		{"0:", ""},
		{"4:spam", "spam"},
		{"3:\x00\xff\n", "\x00\xff\n"},
		{"le", []any{}},
		{"de", map[string]any{}},
		{"l4:spam4:eggse", []any{"spam", "eggs"}},
		{"d3:cow3:moo4:spam4:eggse", map[string]any{"cow": "moo", "spam": "eggs"}},
		{"d4:spaml1:a1:bee", map[string]any{"spam": []any{"a", "b"}}},
		{"d0:i1e1:ai2e2:aai3e1:bi4ee", map[string]any{"": int64(1), "a": int64(2), "aa": int64(3), "b": int64(4)}},
		{"d1:z0:1:\xff0:e", map[string]any{"z": "", "\xff": ""}},
		{strings.Repeat("l", 64) + strings.Repeat("e", 64), nest(64)},
	}
	for _, tt := range tests {
		var v any
		if err := Unmarshal([]byte(tt.in), &v); err != nil {
			t.Errorf("Unmarshal(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(v, tt.want) {
			t.Errorf("Unmarshal(%q) = %#v, want %#v", tt.in, v, tt.want)
		}
	}
}

// nest returns n lists nested inside each other.
func nest(n int) any {
	v := []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

func TestMaxDepthOption(t *testing.T) {
	var v any
	o := DecodeOptions{MaxDepth: 2}
	if err := o.Unmarshal([]byte("llee"), &v); err != nil {
		t.Fatalf("depth 2: %v", err)
	}
	wantSyntax(t, o.Unmarshal([]byte("llleee"), &v), 2, "nesting deeper than 2 levels")
	// Values above the cap are clamped rather than trusted.
	o = DecodeOptions{MaxDepth: math.MaxInt, MaxMemory: -1}
	in := strings.Repeat("l", maxMaxDepth+1) + strings.Repeat("e", maxMaxDepth+1)
	wantSyntax(t, o.Unmarshal([]byte(in), &v), maxMaxDepth, "nesting deeper than 10000")
	// Negative means the default.
	o = DecodeOptions{MaxDepth: -5}
	in = strings.Repeat("l", 65) + strings.Repeat("e", 65)
	wantSyntax(t, o.Unmarshal([]byte(in), &v), 64, "nesting deeper than 64")
}

func TestAllowUnsortedKeys(t *testing.T) {
	o := DecodeOptions{AllowUnsortedKeys: true}
	var v map[string]int
	if err := o.Unmarshal([]byte("d1:bi1e1:ai2ee"), &v); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, map[string]int{"a": 2, "b": 1}) {
		t.Fatalf("got %v", v)
	}
	dups := []struct {
		in  string
		off int64
		key string
	}{
		{"d1:ai1e1:ai2ee", 7, `"a"`},
		{"d1:bi1e1:ai2e1:bi3ee", 13, `"b"`},
		{"d1:c0:1:b0:1:a0:1:b0:e", 16, `"b"`},
		// Two repeated keys: the earliest repetition in the input is reported.
		{"d1:b0:1:a0:1:b0:1:a0:e", 11, `"b"`},
		{"d1:x0:1:bd1:z0:1:y0:1:z0:ee", 20, `"z"`},
	}
	for _, tt := range dups {
		var a any
		wantSyntax(t, o.Unmarshal([]byte(tt.in), &a), tt.off, "duplicate dict key "+tt.key)
		var raw RawMessage
		wantSyntax(t, o.Unmarshal([]byte(tt.in), &raw), tt.off, "duplicate dict key "+tt.key)
	}
	// Unsorted keys are still rejected by default.
	var a any
	wantSyntax(t, Unmarshal([]byte("d1:bi1e1:ai2ee"), &a), 7, "not sorted")
}

func TestUnmarshalTypeErrors(t *testing.T) {
	type inner struct {
		Len uint8 `bencode:"len"`
	}
	tests := []struct {
		name  string
		in    string
		into  any
		off   int64
		value string
		field string
	}{
		{"int8 overflow", "i300e", new(int8), 0, "integer 300", ""},
		{"negative uint", "i-1e", new(uint), 0, "integer -1", ""},
		{"uint8 overflow", "i256e", new(uint8), 0, "integer 256", ""},
		{"bool 2", "i2e", new(bool), 0, "integer 2", ""},
		{"string into int", "3:abc", new(int), 0, "string", ""},
		{"list into string", "le", new(string), 0, "list", ""},
		{"dict into slice", "de", new([]int), 0, "dict", ""},
		{"int into struct", "i1e", new(struct{}), 0, "integer", ""},
		{"list into map", "le", new(map[string]int), 0, "list", ""},
		{"int into bytes", "i1e", new([]byte), 0, "integer", ""},
		{"wrong array string length", "3:abc", new([2]byte), 0, "string of length 3", ""},
		{"short list for array", "li1ei2ee", new([3]int), 0, "list of 2 elements", ""},
		{"long list for array", "li1ei2ei3ee", new([2]int), 0, "list of 3 elements", ""},
		{"float", "i1e", new(float64), 0, "integer", ""},
		{"int map key type", "de", new(map[int]int), 0, "dict", ""},
		{"map value", "d1:xi1ee", new(map[string]string), 4, "integer", "x"},
		{"struct field", "d4:sizei-1ee", new(struct {
			Size uint `bencode:"size"`
		}), 7, "integer -1", "size"},
		{"nested field", "d4:infod3:leni256eee", new(struct {
			Info inner `bencode:"info"`
		}), 13, "integer 256", "info.len"},
		{"non-empty interface", "i1e", new(error), 0, "integer", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal([]byte(tt.in), tt.into)
			var te *UnmarshalTypeError
			if !errors.As(err, &te) {
				t.Fatalf("got %v (%T), want *UnmarshalTypeError", err, err)
			}
			if te.Offset != tt.off || te.Value != tt.value || te.Field != tt.field {
				t.Fatalf("got offset %d value %q field %q, want %d %q %q (%v)",
					te.Offset, te.Value, te.Field, tt.off, tt.value, tt.field, err)
			}
			if te.Type != reflect.TypeOf(tt.into).Elem() && tt.field == "" {
				t.Errorf("Type = %v, want %v", te.Type, reflect.TypeOf(tt.into).Elem())
			}
		})
	}
}

func TestTypeErrorContinues(t *testing.T) {
	var v struct {
		A int `bencode:"a"`
		B int `bencode:"b"`
	}
	err := Unmarshal([]byte("d1:a3:xyz1:bi5ee"), &v)
	var te *UnmarshalTypeError
	if !errors.As(err, &te) || te.Offset != 4 {
		t.Fatalf("got %v, want type error at offset 4", err)
	}
	if v.B != 5 {
		t.Errorf("B = %d, want 5: decoding must continue past a type error", v.B)
	}
	// A syntax error later in the input takes precedence.
	var s []int8
	wantSyntax(t, Unmarshal([]byte("li300ei03ee"), &s), 7, "leading zero")
	// The first type error is the one reported.
	err = Unmarshal([]byte("li300ei400ee"), &s)
	if !errors.As(err, &te) || te.Offset != 1 {
		t.Fatalf("got %v, want the first type error at offset 1", err)
	}
}

func TestInvalidUnmarshal(t *testing.T) {
	var x int
	var nilPtr *int
	for _, v := range []any{nil, x, nilPtr} {
		var ie *InvalidUnmarshalError
		if err := Unmarshal([]byte("i1e"), v); !errors.As(err, &ie) {
			t.Errorf("Unmarshal into %T: got %v, want *InvalidUnmarshalError", v, err)
		}
	}
}

func TestUnmarshalIntoTypes(t *testing.T) {
	var (
		i8   int8
		u64  uint64
		b    bool
		s    string
		bs   []byte
		arr  [4]byte
		ints []int
		ia   [2]int
		m    map[string][]string
		p    *int
		pp   **string
		a    any
	)
	checks := []struct {
		in   string
		into any
		want any
	}{
		{"i-128e", &i8, int8(-128)},
		{"i9223372036854775807e", &u64, uint64(math.MaxInt64)},
		{"i1e", &b, true},
		{"4:\x00\x01\x02\xff", &s, "\x00\x01\x02\xff"},
		{"3:\xde\xad\x00", &bs, []byte{0xde, 0xad, 0}},
		{"0:", &bs, []byte{}},
		{"4:abcd", &arr, [4]byte{'a', 'b', 'c', 'd'}},
		{"li1ei-2ee", &ints, []int{1, -2}},
		{"le", &ints, []int{}},
		{"li7ei8ee", &ia, [2]int{7, 8}},
		{"d1:al1:x1:yee", &m, map[string][]string{"a": {"x", "y"}}},
		{"i42e", &p, ptr(42)},
		{"2:hi", &pp, ptr(ptr("hi"))},
		{"li1e1:sld0:lee0:ee", &a, []any{int64(1), "s", []any{map[string]any{"": []any{}}, ""}}},
	}
	for _, c := range checks {
		if err := Unmarshal([]byte(c.in), c.into); err != nil {
			t.Errorf("Unmarshal(%q, %T): %v", c.in, c.into, err)
			continue
		}
		if got := reflect.ValueOf(c.into).Elem().Interface(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Unmarshal(%q, %T) = %#v, want %#v", c.in, c.into, got, c.want)
		}
	}
	// Decoding into a non-empty slice reuses it without leaking old elements.
	ints = []int{9, 9, 9}
	if err := Unmarshal([]byte("li1ee"), &ints); err != nil || !reflect.DeepEqual(ints, []int{1}) {
		t.Errorf("reused slice: %v %v", ints, err)
	}
	// Decoding into a map adds to it.
	m = map[string][]string{"old": nil}
	if err := Unmarshal([]byte("d3:newle"+"e"), &m); err != nil || len(m) != 2 {
		t.Errorf("existing map: %v %v", m, err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestBytesAreCopied(t *testing.T) {
	in := []byte("d1:a3:abc1:b3:defe")
	var v struct {
		A []byte `bencode:"a"`
		B string `bencode:"b"`
	}
	if err := Unmarshal(in, &v); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if string(v.A) != "abc" || v.B != "def" {
		t.Fatalf("decoded values alias the input: %q %q", v.A, v.B)
	}
}
