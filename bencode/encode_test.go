package bencode

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestMarshal(t *testing.T) {
	type named string
	tests := []struct {
		in   any
		want string
	}{
		{0, "i0e"},
		{-42, "i-42e"},
		{int8(-128), "i-128e"},
		{uint64(math.MaxInt64), "i9223372036854775807e"},
		{int64(math.MinInt64), "i-9223372036854775808e"},
		{true, "i1e"},
		{false, "i0e"},
		{"", "0:"},
		{"spam", "4:spam"},
		{named("x"), "1:x"},
		{[]byte{0, 0xff}, "2:\x00\xff"},
		{[]byte(nil), "0:"},
		{[3]byte{1, 2, 3}, "3:\x01\x02\x03"},
		{[]string{"spam", "eggs"}, "l4:spam4:eggse"},
		{[]int(nil), "le"},
		{[2]int{1, 2}, "li1ei2ee"},
		{map[string]any{"spam": []any{"a", "b"}}, "d4:spaml1:a1:bee"},
		{map[string]int{"b": 1, "a": 2, "aa": 3, "": 4, "\xff": 5, "Z": 6}, "d0:i4e1:Zi6e1:ai2e2:aai3e1:bi1e1:\xffi5ee"},
		{map[named]int{"k": 1}, "d1:ki1ee"},
		{map[string]*int{"nil": nil, "one": ptr(1)}, "d3:onei1ee"},
		{map[string]any{"nil": nil, "raw": RawMessage(nil), "x": 1}, "d1:xi1ee"},
		{ptr(ptr(7)), "i7e"},
		{[]any{int64(1), "s", []any{}, map[string]any{}}, "li1e1:sledee"},
	}
	for _, tt := range tests {
		got, err := Marshal(tt.in)
		if err != nil {
			t.Errorf("Marshal(%#v): %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Marshal(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	type node struct {
		Next *node `bencode:"next"`
	}
	cyc := &node{}
	cyc.Next = cyc
	var nilIface fmt.Stringer
	tests := []struct {
		name string
		in   any
		want any // pointer to the expected error type
	}{
		{"nil", nil, new(*UnsupportedValueError)},
		{"nil pointer", (*int)(nil), new(*UnsupportedValueError)},
		{"nil in list", []*int{nil}, new(*UnsupportedValueError)},
		{"nil interface in list", []any{nil}, new(*UnsupportedValueError)},
		{"empty raw in list", []RawMessage{nil}, new(*UnsupportedValueError)},
		{"nil Stringer", []fmt.Stringer{nilIface}, new(*UnsupportedValueError)},
		{"big uint64", uint64(math.MaxInt64 + 1), new(*UnsupportedValueError)},
		{"cycle", cyc, new(*UnsupportedValueError)},
		{"float", 1.5, new(*UnsupportedTypeError)},
		{"chan", make(chan int), new(*UnsupportedTypeError)},
		{"func field", struct{ F func() }{}, new(*UnsupportedTypeError)},
		{"int keys", map[int]string{1: "a"}, new(*UnsupportedTypeError)},
		{"bad raw", RawMessage("i03e"), new(*MarshalerError)},
		{"raw trailing", RawMessage("i1ei2e"), new(*MarshalerError)},
		{"empty raw", RawMessage{}, new(*UnsupportedValueError)},
		{"marshaler error", failMarshaler{}, new(*MarshalerError)},
		{"marshaler invalid", badMarshaler{}, new(*MarshalerError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err == nil {
				t.Fatalf("Marshal succeeded with %q", got)
			}
			if !errors.As(err, tt.want) {
				t.Fatalf("got %v (%T), want %v", err, err, reflect.TypeOf(tt.want).Elem())
			}
		})
	}
	// Append leaves dst as it was on error.
	dst := []byte("prefix")
	out, err := Append(dst, 1.5)
	if err == nil || string(out) != "prefix" {
		t.Fatalf("Append on error = %q, %v", out, err)
	}
}

type failMarshaler struct{}

func (failMarshaler) MarshalBencode() ([]byte, error) { return nil, errors.New("boom") }

type badMarshaler struct{}

func (badMarshaler) MarshalBencode() ([]byte, error) { return []byte("i1"), nil }

// hexID encodes as a string of hex digits, to check Marshaler and
// Unmarshaler are honoured, including inside containers.
type hexID [2]byte

func (h hexID) MarshalBencode() ([]byte, error) {
	return Marshal(fmt.Sprintf("%02x%02x", h[0], h[1]))
}

func (h *hexID) UnmarshalBencode(b []byte) error {
	var s string
	if err := Unmarshal(b, &s); err != nil {
		return err
	}
	if _, err := fmt.Sscanf(s, "%02x%02x", &h[0], &h[1]); err != nil {
		return fmt.Errorf("hexID %q: %w", s, err)
	}
	return nil
}

// counter has a pointer-receiver MarshalBencode, honoured only when the
// value is addressable.
type counter struct{ n int }

func (c *counter) MarshalBencode() ([]byte, error) { return Marshal(c.n * 10) }

func TestMarshalerUnmarshaler(t *testing.T) {
	type msg struct {
		ID  hexID            `bencode:"id"`
		IDs []hexID          `bencode:"ids"`
		ByK map[string]hexID `bencode:"by"`
		P   *hexID           `bencode:"p"`
	}
	in := msg{ID: hexID{0xab, 0x01}, IDs: []hexID{{1, 2}}, ByK: map[string]hexID{"k": {3, 4}}, P: &hexID{5, 6}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := "d2:byd1:k4:0304e2:id4:ab013:idsl4:0102e1:p4:0506e"
	if string(b) != want {
		t.Fatalf("Marshal = %q, want %q", b, want)
	}
	var out msg
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	// Errors from UnmarshalBencode are returned, wrapped with the offset.
	err = Unmarshal([]byte("d2:id2:zze"), &out)
	if err == nil || !strings.Contains(err.Error(), "offset 5") || !strings.Contains(err.Error(), `hexID "zz"`) {
		t.Fatalf("got %v", err)
	}
	// UnmarshalBencode receives the raw value, but only once it is valid.
	wantSyntax(t, Unmarshal([]byte("d2:idi03ee"), &out), 6, "leading zero")

	c := struct{ C counter }{counter{4}}
	if b, err := Marshal(&c); err != nil || string(b) != "d1:Ci40ee" {
		t.Fatalf("addressable pointer-receiver Marshaler: %q %v", b, err)
	}
	// Not addressable: the method cannot be called and the struct is
	// encoded field by field (it has no exported fields).
	if b, err := Marshal(c); err != nil || string(b) != "d1:Cdee" {
		t.Fatalf("non-addressable pointer-receiver Marshaler: %q %v", b, err)
	}
}

func TestStructTags(t *testing.T) {
	type Base struct {
		ID   int    `bencode:"id"`
		Note string `bencode:"note"`
	}
	type Extra struct {
		Flag bool `bencode:"flag"`
	}
	type tagged struct {
		Base                    // promoted fields
		*Extra                  // promoted through a pointer
		Name     string         `bencode:"name"`
		Note     string         `bencode:"note"` // shadows Base.Note
		Plain    int            // untagged: key is the Go name
		Skip     string         `bencode:"-"`
		Dash     string         `bencode:"-,"` // the key "-"
		Omit     string         `bencode:"omit,omitempty"`
		OmitInt  int            `bencode:",omitempty"` // Go name, omitempty
		OmitList []int          `bencode:"ol,omitempty"`
		Ptr      *int           `bencode:"ptr"` // nil: omitted
		Spaced   int64          `bencode:"piece length"`
		Hash     [4]byte        `bencode:"hash"`
		Any      any            `bencode:"any"`
		Raw      RawMessage     `bencode:"raw"`
		Sub      *Base          `bencode:"sub"`
		unexp    int            //nolint:unused // must be ignored
		Map      map[string]int `bencode:"map,omitempty"`
	}
	in := tagged{
		Base:   Base{ID: 7, Note: "hidden"},
		Extra:  &Extra{Flag: true},
		Name:   "n",
		Note:   "outer",
		Plain:  3,
		Skip:   "never",
		Dash:   "d",
		Spaced: 16384,
		Hash:   [4]byte{1, 2, 3, 4},
		Any:    []any{"x"},
		Raw:    RawMessage("d1:ai2e1:bi1ee"),
		Sub:    &Base{ID: 1},
		unexp:  9,
	}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := "d1:-1:d5:Plaini3e3:anyl1:xe4:flagi1e4:hash4:\x01\x02\x03\x042:idi7e4:name1:n4:note5:outer12:piece lengthi16384e3:rawd1:ai2e1:bi1ee3:subd2:idi1e4:note0:ee"
	if string(b) != want {
		t.Fatalf("Marshal =\n%q\nwant\n%q", b, want)
	}
	var out tagged
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	in.Skip, in.unexp, in.Base.Note = "", 0, ""
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	if out.Extra == nil || !out.Extra.Flag {
		t.Fatalf("embedded pointer not allocated: %+v", out.Extra)
	}
	// A nil embedded pointer contributes no keys.
	in.Extra = nil
	if b, err := Marshal(in); err != nil || bytes.Contains(b, []byte("flag")) {
		t.Fatalf("nil embedded pointer: %q %v", b, err)
	}
	// Unknown keys are skipped but validated.
	var small struct {
		Name string `bencode:"name"`
	}
	if err := Unmarshal([]byte("d1:ali1ed1:xi2eee4:name1:ne"), &small); err != nil || small.Name != "n" {
		t.Fatalf("unknown keys: %+v %v", small, err)
	}
	wantSyntax(t, Unmarshal([]byte("d1:ai01e4:name1:ne"), &small), 5, "leading zero")
	// Keys match exactly: no case folding.
	small.Name = ""
	if err := Unmarshal([]byte("d4:Name1:ne"), &small); err != nil || small.Name != "" {
		t.Fatalf("case-folded key matched: %+v %v", small, err)
	}
}

func TestFieldConflicts(t *testing.T) {
	type A struct{ X, Y int }
	type B struct {
		X int
		Y int `bencode:"Y"`
	}
	type both struct {
		A
		B
	}
	// X is ambiguous and dropped; the tagged Y wins over the untagged one.
	b, err := Marshal(both{A{1, 2}, B{3, 4}})
	if err != nil || string(b) != "d1:Yi4ee" {
		t.Fatalf("got %q %v", b, err)
	}
	type twice struct {
		A
		Inner struct{ A }
	}
	b, err = Marshal(twice{A: A{1, 2}})
	if err != nil || string(b) != "d5:Innerd1:Xi0e1:Yi0ee1:Xi1e1:Yi2ee" {
		t.Fatalf("got %q %v", b, err)
	}
}

type recursive struct {
	Name     string      `bencode:"name"`
	Children []recursive `bencode:"children,omitempty"`
	Next     *recursive  `bencode:"next"`
}

func TestRecursiveType(t *testing.T) {
	in := recursive{Name: "a", Children: []recursive{{Name: "b", Next: &recursive{Name: "c"}}}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out recursive
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("got %+v", out)
	}
}

func TestSelfPointerType(t *testing.T) {
	type P *P
	var p P
	err := Unmarshal([]byte("i1e"), &p)
	if err == nil || !strings.Contains(err.Error(), "pointer indirections") {
		t.Fatalf("got %v", err)
	}
}

func TestRawMessage(t *testing.T) {
	type torrent struct {
		Announce string     `bencode:"announce"`
		Info     RawMessage `bencode:"info"`
	}
	// Keys out of order inside info, as written by old creators.
	info := "d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae"
	unsorted := "d4:name1:a6:lengthi5e6:pieces20:aaaaaaaaaaaaaaaaaaaa12:piece lengthi16384ee"
	for _, raw := range []string{info, unsorted} {
		in := []byte("d8:announce3:url4:info" + raw + "e")
		var tr torrent
		err := DecodeOptions{AllowUnsortedKeys: true}.Unmarshal(in, &tr)
		if err != nil {
			t.Fatal(err)
		}
		if string(tr.Info) != raw {
			t.Fatalf("RawMessage = %q, want the exact input bytes %q", tr.Info, raw)
		}
		// The RawMessage is a copy, not a view of the input.
		in[len(in)-3] = 'X'
		if string(tr.Info) != raw {
			t.Fatal("RawMessage aliases the input")
		}
		// Re-encoding writes the raw bytes verbatim.
		out, err := Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		if want := "d8:announce3:url4:info" + raw + "e"; string(out) != want {
			t.Fatalf("Marshal = %q, want %q", out, want)
		}
	}
	// In strict mode the unsorted info dict is rejected even inside a
	// RawMessage, at the offset of the offending key.
	var tr torrent
	wantSyntax(t, Unmarshal([]byte("d8:announce3:url4:info"+unsorted+"e"), &tr), 22+10, `dict key "length" is not sorted`)
	// A missing RawMessage field is omitted on encode.
	if b, err := Marshal(torrent{Announce: "u"}); err != nil || string(b) != "d8:announce1:ue" {
		t.Fatalf("empty RawMessage field: %q %v", b, err)
	}
	// MarshalBencode on its own validates too.
	if _, err := RawMessage("i1").MarshalBencode(); err == nil {
		t.Fatal("invalid RawMessage accepted")
	}
	var nilRaw *RawMessage
	if err := nilRaw.UnmarshalBencode([]byte("i1e")); err == nil {
		t.Fatal("UnmarshalBencode on nil pointer succeeded")
	}
	// Top-level RawMessage.
	var r RawMessage
	if err := Unmarshal([]byte("li1ee"), &r); err != nil || string(r) != "li1ee" {
		t.Fatalf("top-level RawMessage: %q %v", r, err)
	}
}

func TestAppendAndEncoder(t *testing.T) {
	dst := []byte{0, 0, 0, 0}
	out, err := Append(dst, map[string]int{"a": 1})
	if err != nil || string(out) != "\x00\x00\x00\x00d1:ai1ee" {
		t.Fatalf("Append = %q %v", out, err)
	}
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	for _, v := range []any{1, "ab", []int{2}} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Encode(1.5); err == nil {
		t.Fatal("Encode(float) succeeded")
	}
	if buf.String() != "i1e2:abli2ee" {
		t.Fatalf("Encoder wrote %q", buf.String())
	}
	enc = NewEncoder(errWriter{})
	if err := enc.Encode(1); err == nil || !strings.Contains(err.Error(), "writing value") {
		t.Fatalf("write error: %v", err)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
